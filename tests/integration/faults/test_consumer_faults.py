"""Every asynchronous consumer under every fault that can reach it, delivered as Lambda delivers.

One table of (consumer, fault) cases. For each: the scenario sets work going through the real
API, buckets and queues; the fault is aimed at the consumer (botocore hooks on the app's own
clients, or the way messages are delivered); delivery goes on, with retries and the queues' real
redrive policy, until every queue is empty; then nothing is lost, nothing is applied twice, the
DLQ holds the poison message and nothing else, and every record is in a state a user can read.

Not in the table, because the consumer makes no such call: S3 errors for orders, sales and low
stock (DynamoDB only, and SES for the e-mail), SNS errors for orders, images, cleanup, sales and
low stock (only the import pipeline publishes).

The read side of the domain events (the sales read model, the low-stock e-mail) is fed by the
tables' streams through the bus: the scenarios publish real changes, moto's rules route them.
The publisher itself under EventBridge's failures is test_publisher_faults.py.

The order saga is a consumer too (of the executions the orders consumer starts): its steps run as
the state machine runs them (tests/integration/faults/sagas.py), and a fault must never change the
ending an order's card decides. DynamoDB throttled or failing during a step is DependencyUnavailable,
the payment provider's 503s PaymentProviderUnavailable: both retried by the state machine.
"""

from __future__ import annotations

import pytest

from tests.integration.faults.delivery import CONCURRENTLY, ONCE, REVERSED, TWICE
from tests.integration.faults.injection import Faults, app_clients
from tests.integration.faults.scenarios import OUT_OF_ORDER, PAYMENTS_UNAVAILABLE, SCENARIOS, Scenario

pytestmark = pytest.mark.timeout(240)

THROTTLING, S3_ERRORS, SNS_ERRORS = "dynamodb throttling", "s3 errors", "sns errors"
KILLED, TWICE_, CONCURRENT = "killed mid-batch", "delivered twice", "delivered concurrently"
DYNAMODB_UNAVAILABLE = "dynamodb unavailable"

ALL = (THROTTLING, S3_ERRORS, SNS_ERRORS, KILLED, TWICE_, CONCURRENT, OUT_OF_ORDER)
CASES = {
    "orders": (THROTTLING, KILLED, TWICE_, CONCURRENT, OUT_OF_ORDER),
    "saga": (THROTTLING, DYNAMODB_UNAVAILABLE, PAYMENTS_UNAVAILABLE, TWICE_),
    "images": (THROTTLING, S3_ERRORS, KILLED, TWICE_, CONCURRENT, OUT_OF_ORDER),
    "dispatcher": ALL,
    "workers": ALL,
    "cleanup": (THROTTLING, S3_ERRORS, KILLED, TWICE_, CONCURRENT, OUT_OF_ORDER),
    "sales": (THROTTLING, KILLED, TWICE_, CONCURRENT, OUT_OF_ORDER),
    "low stock": (THROTTLING, KILLED, TWICE_, CONCURRENT, OUT_OF_ORDER),
}
HOW = {TWICE_: TWICE, CONCURRENT: CONCURRENTLY, OUT_OF_ORDER: REVERSED}
ERRORS = {"s3": (("InternalError", 500), ("SlowDown", 503)), "sns": (("InternalError", 500), ("Throttling", 400))}
THROTTLED_SHARE = 0.25  # of the consumer's DynamoDB requests, on the wire (the SDK retries them)


def aim(faults: Faults, fault: str, scenario: Scenario) -> None:
    if fault == THROTTLING:
        faults.throttle("dynamodb", THROTTLED_SHARE)
    elif fault in (S3_ERRORS, SNS_ERRORS):
        service, operations = ("s3", scenario.s3_operations) if fault == S3_ERRORS else ("sns", scenario.sns_operations)
        errors = ERRORS[service]
        # Each operation's calls fail with the service's error codes in turn, starting at a different one.
        for shift, operation in enumerate(sorted(operations)):
            for n in range(scenario.failed_calls):
                code, status = errors[(shift + n) % len(errors)]
                faults.fail_first(service, {operation}, 1, code, status)
    elif fault == KILLED:
        faults.kill_after_writes(scenario.kill_at)
    elif fault == DYNAMODB_UNAVAILABLE:
        # Past the SDK's retries: each failure reaches a step as DependencyUnavailable. Fewer than
        # a step's retries (an outage longer than them ends the order `failed`, compensated).
        faults.fail_first("dynamodb", {"GetItem"}, 1, "ServiceUnavailable", 503)
        faults.fail_first("dynamodb", {"UpdateItem", "TransactWriteItems"}, 1, "InternalServerError", 500)


@pytest.mark.parametrize(("consumer", "fault"), [(c, f) for c, faults in CASES.items() for f in faults],
                         ids=lambda value: value.replace(" ", "-"))
def test_a_consumer_under_a_fault_loses_nothing_and_applies_nothing_twice(world, consumer: str, fault: str) -> None:
    scenario = SCENARIOS[consumer]()
    scenario.arrange(world, fault)
    faults = Faults(scenario.target)
    aim(faults, fault, scenario)

    with faults.installed(app_clients()):
        scenario.settle(world, HOW.get(fault, ONCE))

    if fault in (THROTTLING, S3_ERRORS, SNS_ERRORS, KILLED, DYNAMODB_UNAVAILABLE):
        assert faults.injected, f"the fault never reached {scenario.target}"
    if fault in (TWICE_, CONCURRENT):
        assert world.delivery.repeated[scenario.target], f"{scenario.target} never got a message twice"
    scenario.check(world, fault)
