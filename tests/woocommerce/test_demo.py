import contextlib
import io

from customers.models import Customer
from sync.management.commands.demo import DemoContext


def test_demo_syncs_the_sandbox_store_and_shows_webhooks(org, staff):
    from connectors.woocommerce import demo

    with contextlib.ExitStack() as stack:
        ctx = DemoContext(organization=org, user=staff, stack=stack, stdout=io.StringIO())
        rows = demo.run(ctx)
        convergence = demo.converge(ctx)
    by_resource = {r["resource"]: r for r in rows}
    assert by_resource["customers"]["records"] == demo.DEMO_CUSTOMERS and by_resource["customers"]["state"] == "done"
    assert by_resource["orders"]["state"] == by_resource["products"]["state"] == "done"
    hooks = by_resource["webhooks"]
    assert (
        hooks["state"] == "done"
        and "first_name='Webhooked'" in hooks["note"]
        and "deleted_at set=True" in hooks["note"]
        and "replays dropped=1" in hooks["note"]
    )
    assert Customer.objects.filter(organization=org, first_name="Webhooked").count() == 1
    # Issue 16: edits, deletes and trashes without webhooks converge through the schedules' runs.
    assert convergence["state"] == "converged", convergence["note"]
    assert convergence["note"].endswith("tables equal upstream: yes")
