from typing import Literal

from .base import NodeBase


class HumanNode(NodeBase):
    """Pauses the run until someone with `approver_role` or above approves or rejects.

    Output: {"decision": "approved" | "rejected", "comment": str, "by": str}. The inherited
    `timeout_s` bounds the wait.
    """

    type: Literal["human"]
    prompt: str = ""
    approver_role: Literal["editor", "admin", "owner"] = "editor"

    template_fields = ("prompt",)
