"""The delivery invariant, as tests check it: every event handed off is delivered, waiting (in the
spool or in memory), or dropped under a named reason; nothing else.

    enqueued + adopted == delivered + in_spool + in_memory + sum(dropped[reason])

(adopted: events a process that died had spooled, which this one took over and now owns.
An event counts as enqueued once the worker takes it from the queue, or when it is refused at
the door as queue_full; in_memory is what was built and waits for the spool.)
"""
from eventtrail.stats import counters


def ledger(handoff) -> dict:
    """This process's side of the sum, with its terms."""
    values = counters.snapshot()["counters"]
    dropped = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("dropped.") and v}
    return {
        "enqueued": values["enqueued"],
        "adopted": values["adopted"],
        "delivered": values["delivered"],
        "in_spool": handoff.spool.count() if handoff.spool is not None else 0,
        "in_memory": handoff.in_memory(),
        "dropped": dropped,
    }


def assert_balanced(handoff) -> dict:
    """Assert the invariant for ``handoff`` (at rest: no batch half-built), and return the terms."""
    terms = ledger(handoff)
    accounted = (terms["delivered"] + terms["in_spool"] + terms["in_memory"]
                 + sum(terms["dropped"].values()))
    assert terms["enqueued"] + terms["adopted"] == accounted, terms
    return terms
