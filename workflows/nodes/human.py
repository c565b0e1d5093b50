from typing import Literal

from .base import NodeBase, WaitForHuman


class HumanNode(NodeBase):
    """Pauses the run until someone with `approver_role` or above approves or rejects.

    Output: {"decision": "approved" | "rejected", "comment": str, "by": str}. The wait has no
    time limit yet: an inherited `timeout_s` is accepted but not enforced on the wait.
    """

    type: Literal["human"]
    instant = True
    prompt: str = ""
    approver_role: Literal["editor", "admin", "owner"] = "editor"

    template_fields = ("prompt",)

    def execute(self, ctx):
        decision = ctx.decision()
        if decision is None:
            prompt = ctx.render(self.prompt, "prompt") if self.prompt else ""
            ctx.record_input({"prompt": prompt, "approver_role": self.approver_role})
            raise WaitForHuman(prompt)
        return decision
