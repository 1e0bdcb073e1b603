"""The publication of a block's result waits for the next block to be sent: started at once,
it competed with the evaluator's own work while the kernel waited for that work."""

from __future__ import annotations

import threading

import pytest

from mdrun.document.background_publication import BackgroundPublisher
from mdrun.errors import NoSpaceError


def test_a_publication_starts_when_the_next_block_is_sent_and_is_settled_once() -> None:
    ran: list[str] = []
    publisher = BackgroundPublisher()
    try:
        publisher.submit(3, lambda: ran.append(threading.current_thread().name))
        handed_over = publisher.pending
        assert ran == [] and handed_over == 3  # handed over, not started
        publisher.start()
        assert publisher.settle() == (3, None)
        assert len(ran) == 1 and ran[0].startswith("mdrun-publication")
        left = publisher.pending
        assert left is None and publisher.settle() is None
    finally:
        publisher.close()


def test_settling_a_publication_not_started_runs_it_and_reports_its_failure() -> None:
    failure = NoSpaceError("the disk is full")

    def full_disk() -> None:
        raise failure

    publisher = BackgroundPublisher()
    try:
        publisher.submit(0, full_disk)
        with pytest.raises(RuntimeError, match="block 0's publication is not settled"):
            publisher.submit(1, lambda: None)
        assert publisher.settle() == (0, failure)
    finally:
        publisher.close()
