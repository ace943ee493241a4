"""How resources of infra/resources.json are named for the app."""

import pytest

from infra.resources import app_resources, env_var_name, load_template


@pytest.mark.parametrize(
    "logical_id, expected",
    [
        ("ProductsTable", "PRODUCTS_TABLE"),
        ("OrdersQueue", "ORDERS_QUEUE"),
        ("UserPoolClient", "USER_POOL_CLIENT"),
        ("ImportChunksDeadLetterQueue", "IMPORT_CHUNKS_DEAD_LETTER_QUEUE"),
        ("S3Bucket", "S3_BUCKET"),
        ("APIKey", "API_KEY"),
        ("Bucket2", "BUCKET2"),
    ],
)
def test_a_logical_id_becomes_an_upper_snake_env_var_name(logical_id: str, expected: str) -> None:
    assert env_var_name(logical_id) == expected


@pytest.mark.parametrize("not_a_logical_id", ["", "orders-queue", "Orders Queue", "9Lives"])
def test_what_cloudformation_would_not_accept_as_a_logical_id_is_refused(not_a_logical_id: str) -> None:
    with pytest.raises(ValueError):
        env_var_name(not_a_logical_id)


def test_the_app_is_told_about_every_resource_except_wiring_roles_and_log_groups() -> None:
    template = load_template()

    names = app_resources(template)

    assert "ProductsTable" in names and "UploadsBucket" in names and "UserPoolClient" in names
    assert "OrdersQueueDeadLetterQueue" in names
    assert "OrderSagaStateMachine" in names
    assert "EventBus" in names
    assert not {"ImageUploadsQueuePolicy", "ImportChunksSubscription", "OrderSagaRole", "OrderSagaLogGroup",
                "SalesOrderEventsRule", "EventArchive", "ProductChangesMapping"} & set(names)
    assert set(names) == {
        i for i, r in template["Resources"].items()
        if r["Type"] not in ("AWS::SQS::QueuePolicy", "AWS::SNS::Subscription", "AWS::IAM::Role", "AWS::Logs::LogGroup",
                             "AWS::Events::Rule", "AWS::Events::Archive", "AWS::Lambda::EventSourceMapping")
    }


def test_no_two_resources_share_an_env_var() -> None:
    names = app_resources(load_template())

    assert len({env_var_name(n) for n in names}) == len(names)
