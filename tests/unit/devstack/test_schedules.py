"""When EventBridge schedule expressions fire next."""

from datetime import datetime, timedelta, timezone

import pytest

from devstack.schedules import InvalidScheduleExpression, next_fire


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# 2026-01-01 is a Thursday.
THURSDAY_NEW_YEAR = utc(2026, 1, 1, 0, 30)


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("rate(1 minute)", utc(2026, 1, 1, 0, 31)),
        ("rate(5 minutes)", utc(2026, 1, 1, 0, 35)),
        ("rate(1 hour)", utc(2026, 1, 1, 1, 30)),
        ("rate(2 days)", utc(2026, 1, 3, 0, 30)),
    ],
)
def test_a_rate_fires_one_period_after_the_previous_fire(expression, expected):
    assert next_fire(expression, THURSDAY_NEW_YEAR) == expected


@pytest.mark.parametrize("expression", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)",
                                        "rate(5 weeks)", "rate(five minutes)"])
def test_rates_eventbridge_rejects_are_rejected(expression):
    with pytest.raises(InvalidScheduleExpression):
        next_fire(expression, THURSDAY_NEW_YEAR)


@pytest.mark.parametrize(
    "expression, expected",
    [
        # every hour on the hour
        ("cron(0 * * * ? *)", utc(2026, 1, 1, 1, 0)),
        # lists and steps
        ("cron(15,45 * * * ? *)", utc(2026, 1, 1, 0, 45)),
        ("cron(0/20 * * * ? *)", utc(2026, 1, 1, 0, 40)),
        # AWS numbers the week 1-7 from Sunday: 2-6 is Monday to Friday, like MON-FRI
        ("cron(0 10 ? * 2-6 *)", utc(2026, 1, 1, 10, 0)),
        ("cron(0 10 ? * MON-FRI *)", utc(2026, 1, 1, 10, 0)),
        ("cron(0 10 ? * 1 *)", utc(2026, 1, 4, 10, 0)),
        ("cron(0 10 ? * 7 *)", utc(2026, 1, 3, 10, 0)),
        ("cron(0 10 ? * SAT,SUN *)", utc(2026, 1, 3, 10, 0)),
        # the second Tuesday; the last Friday; the last day of the month
        ("cron(0 10 ? * 3#2 *)", utc(2026, 1, 13, 10, 0)),
        ("cron(0 10 ? * 6L *)", utc(2026, 1, 30, 10, 0)),
        ("cron(0 12 L * ? *)", utc(2026, 1, 31, 12, 0)),
        # day of month and month names
        ("cron(0 0 1 FEB ? *)", utc(2026, 2, 1, 0, 0)),
        ("cron(30 6 15 */3 ? *)", utc(2026, 1, 15, 6, 30)),
        # the year field, handled outside croniter
        ("cron(0 0 1 1 ? 2028-2030)", utc(2028, 1, 1, 0, 0)),
        ("cron(0 8 ? * 1,7 2027/2)", utc(2027, 1, 2, 8, 0)),
        ("cron(0 0 * * ? 2026,2031)", utc(2026, 1, 2, 0, 0)),
    ],
)
def test_a_cron_fires_at_the_next_matching_minute(expression, expected):
    assert next_fire(expression, THURSDAY_NEW_YEAR) == expected


def test_a_cron_fires_strictly_after_the_given_time():
    assert next_fire("cron(0 * * * ? *)", utc(2026, 1, 1, 1, 0)) == utc(2026, 1, 1, 2, 0)


def test_a_cron_whose_years_are_past_never_fires_again():
    assert next_fire("cron(0 0 1 1 ? 2020-2025)", THURSDAY_NEW_YEAR) is None


def test_the_answer_is_in_utc_whatever_the_zone_of_the_question():
    plus_two = timezone(timedelta(hours=2))
    fire = next_fire("cron(0 * * * ? *)", datetime(2026, 1, 1, 2, 30, tzinfo=plus_two))
    assert fire == utc(2026, 1, 1, 1, 0)
    assert fire.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 * * * *)",  # five fields: a Unix cron, not EventBridge's
        "cron(0 10 * * MON *)",  # both day fields set
        "cron(0 10 ? * ? *)",  # neither day field set
        "cron(0 10 ? * 8 *)",  # day of week out of 1-7
        "cron(0 10 ? * 0 *)",
        "cron(61 * * * ? *)",
        "cron(0 0 1 1 ? 1969)",
        "cron(0 0 1 1 ? 2030-2028)",
        "every hour",
    ],
)
def test_expressions_eventbridge_rejects_are_rejected(expression):
    with pytest.raises(InvalidScheduleExpression):
        next_fire(expression, THURSDAY_NEW_YEAR)


def test_a_naive_time_is_refused_rather_than_guessed():
    with pytest.raises(ValueError):
        next_fire("rate(5 minutes)", datetime(2026, 1, 1))
