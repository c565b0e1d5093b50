"""Fixtures of the credential tests: Ada (an admin of Acme), credentials, published
workflows that name them, and a fresh price cache for every test."""
import pytest
from django.db.models import TextField
from django.db.models.functions import Cast

from accounts.models import Membership, Role, User
from providers import pricing
from providers.models import Credential, CredentialUse, credential_uses
from tests.conftest import PASSWORD
from tests.workflows.helpers import make_workflow
from tests.workflows.spec_samples import linear_spec
from workflows.models import Workflow, WorkflowVersion

SECRET = "sk-proj-Zq8ab3F0s9LmTt2c7Vx1wxyz"
MASK = "sk-…wxyz"


@pytest.fixture
def ada(acme):
    """An admin (not owner) of Acme."""
    user = User.objects.create_user("ada@acme.test", PASSWORD)
    Membership.objects.create(organization=acme, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def credential(acme, alice):
    """Acme's "prod-mock" credential for the mock provider, holding SECRET."""
    return Credential.add(acme, name="prod-mock", provider="mock", secret=SECRET, created_by=alice)


def spec_using(credential_name):
    spec = linear_spec()
    spec["sources"]["writer"]["credential"] = credential_name
    return spec


@pytest.fixture
def workflow_using(acme, alice):
    """workflow_using(name, publish=True) -> a workflow of Acme whose source names credential `name`."""

    def make(credential_name, publish=True, name="Support triage"):
        return make_workflow(acme, spec_using(credential_name), author=alice, publish=publish, name=name)

    return make


def _published_uses(credential, **kwargs):
    """Published versions of workflows that are not archived whose sources name `credential`."""
    versions = (
        WorkflowVersion.objects.filter(organization_id=credential.organization_id,
                                       state=WorkflowVersion.State.PUBLISHED)
        .exclude(workflow__status=Workflow.Status.ARCHIVED)
        # A cheap text filter first; the exact check reads the sources below.
        .annotate(text=Cast("spec", TextField()))
        .filter(text__contains=f'"{credential.name}"')
        .select_related("workflow")
    )
    return [
        CredentialUse(version.workflow.name, version.number, version.workflow_id)
        for version in versions
        if any(source.get("credential") == credential.name for source in version.spec.get("sources", {}).values())
    ]


@pytest.fixture(autouse=True)
def _workflows_answer_credential_uses():
    """Until workflows connects its own receiver to `credential_uses`, this one (the same
    query) stands in for it, so the in-use rules are exercised end to end."""
    if credential_uses.has_listeners(Credential):
        yield
        return
    credential_uses.connect(_published_uses, sender=Credential, dispatch_uid="tests.credential_uses")
    yield
    credential_uses.disconnect(sender=Credential, dispatch_uid="tests.credential_uses")


@pytest.fixture(autouse=True)
def _fresh_prices():
    # Test databases roll back without signals, so a cached table could outlive its rows.
    pricing.clear_cache()
    yield
    pricing.clear_cache()
