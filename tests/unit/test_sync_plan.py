from syntaskio_connector.tickets import assigned_open_tickets, plan_sync


def ticket(ticket_id: int, updated: str) -> dict[str, object]:
    return {"id": ticket_id, "_info": {"lastUpdated": updated}}


def test_only_new_and_changed_tickets_are_published_and_missing_ones_removed() -> None:
    published = {"1": "2026-01-01T00:00:00Z", "2": "2026-01-01T00:00:00Z", "3": "x"}
    plan = plan_sync(
        published,
        [ticket(1, "2026-01-01T00:00:00Z"), ticket(2, "2026-02-01T00:00:00Z"), ticket(4, "y")],
    )
    assert [t["id"] for t in plan.changed] == [2, 4]
    assert plan.removed_ids == ["3"]
    assert plan.versions == {"1": "2026-01-01T00:00:00Z", "2": "2026-02-01T00:00:00Z", "4": "y"}


def test_first_sync_publishes_everything() -> None:
    plan = plan_sync({}, [ticket(1, "a"), ticket(2, "b")])
    assert len(plan.changed) == 2
    assert plan.removed_ids == []


def test_member_identifiers_cannot_break_out_of_the_condition() -> None:
    conditions = assigned_open_tickets('x" or id > 0 or owner/identifier = "y')
    assert conditions.count('\\"') == 4  # both quotes escaped, in both places
    assert conditions.startswith("closedFlag = false and (owner/identifier = ")
