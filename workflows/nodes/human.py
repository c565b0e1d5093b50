from typing import Literal

from .base import NodeBase, WaitForHuman


class HumanNode(NodeBase):
    """Pauses the run until someone with `approver_role` or above approves or rejects.

    Output: {"decision": "approved" | "rejected", "comment": str, "by": str}. With `timeout_s`,
    the step fails ("no decision within N s") when nobody decides in time; a waiting run is
    woken for that by a task scheduled at the deadline.
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
