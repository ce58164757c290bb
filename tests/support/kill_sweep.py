"""The one kill sweep every suite runs: a Scenario on a Backend, killed after each write.

docs/design.md#ordering and docs/design.md#commit-steps: an invocation killed after any
of its writes, then another event, then Lambda's retry of the killed invocation, ends
exactly where an undisturbed run ends.

A Scenario says what is seeded, the steps (invocations, packets arriving, an operator's
late request), which writes are kill points and what runs between a kill and its retry.
A Backend says where the store lives and how a kill lands (tests/support/backends.py:
in-memory fakes raising at the n-th write, the real adapters over moto's server, a real
process that dies). The driver runs the scenario once undisturbed (the reference: its
end state and the writes each step made), picks the kill points (sweep.py: every one
under KILL_SWEEP=full, else a fixed sample) and, for each, runs: the steps before, the
killed step dying right after its n-th write, what the scenario runs meanwhile, the
retry, the steps after. The recovered run must have died where it was told to (its
writes the reference's first n), every later invocation must succeed, the end state
must hold the store's invariants (gapless numbers, produced ids matching the files, no
orphan, nothing pending) and equal the reference, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple, Protocol

from tests.support.harness import DIMENSIONS
from tests.support.sweep import kill_points as sampled


@dataclass(frozen=True)
class Invoke:
    """One Lambda invocation naming these packets ("table:id")."""

    packets: tuple[str, ...]


@dataclass(frozen=True)
class Arrive:
    """Packets land in the ingestion bucket: (table, packet id, rows) each."""

    packets: tuple[tuple[str, int, list], ...]


@dataclass(frozen=True)
class Late:
    """An operator asks for a passed-over packet to be processed late (runtime.operations)."""

    table: str
    packet_id: int


Step = Invoke | Arrive | Late


def dimensions(packet_id: int = 1, **tables) -> Arrive:
    """Packet `packet_id` of every dimension source (the harness's DIMENSIONS rows unless given)."""
    return Arrive(tuple((table, packet_id, rows) for table, rows in {**DIMENSIONS, **tables}.items()))


class Point(NamedTuple):
    """Kill step `step` (an index into the scenario's steps) right after its `write`-th write."""

    step: int
    write: int

    def __str__(self) -> str:
        return f"{self.step}-{self.write}"


@dataclass(frozen=True)
class Outcome:
    """What one invocation did: killed or not, the writes it made, an error if it failed."""

    killed: bool = False
    writes: tuple[str, ...] = ()
    error: str | None = None


class Backend(Protocol):
    def fresh(self) -> Any:
        """A clean store, as the stack creates it; returns the world the steps run in."""

    def fork(self, world: Any) -> Any | None:
        """An independent copy of `world`, or None when the store cannot be copied (the
        driver then reruns the seed and the earlier steps)."""

    def upload(self, world: Any, table: str, packet_id: int, rows: list) -> None: ...

    def late(self, world: Any, table: str, packet_id: int) -> None: ...

    def invoke(self, world: Any, packets: Sequence[str], kill_after: int | None = None) -> Outcome:
        """Run one invocation; with `kill_after`, it dies right after that many writes."""

    def end_state(self, world: Any) -> Any:
        """Everything the processor left behind, comparable with `==`."""

    def check(self, state: Any) -> None:
        """Assert the store's invariants on an end state."""

    def diff(self, state: Any, expected: Any) -> str: ...


def _every_write(write: str) -> bool:
    return True


@dataclass(frozen=True)
class Scenario:
    seed: tuple[Step, ...]  # run before the swept steps; never killed
    steps: tuple[Step, ...]
    killed: tuple[int, ...] | None = None  # the steps whose writes are kill points; None: every Invoke
    # The event between a kill and its retry. None: the next step (after the last one, a
    # repeat of the first), which is then not run again after the retry.
    meanwhile: Invoke | None = None
    kill_at: Callable[[str], bool] = field(default=_every_write)  # which writes are kill points
    sample: int | None = None  # kill points kept in `make test` (sweep.py); None: every point, always

    def killable(self) -> list[int]:
        if self.killed is not None:
            return list(self.killed)
        return [i for i, step in enumerate(self.steps) if isinstance(step, Invoke)]

    def recovery(self, killed: int) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
        """What runs after step `killed` dies: before its retry, and after the retry."""
        if self.meanwhile is not None:
            return (self.meanwhile,), self.steps[killed + 1 :]
        if killed + 1 < len(self.steps):
            return (self.steps[killed + 1],), self.steps[killed + 2 :]
        return (self.steps[0],), ()


@dataclass(frozen=True)
class Reference:
    """The undisturbed run: its world, end state, the writes of each step, and a copy of
    the world before each step (None where the backend cannot copy)."""

    world: Any
    state: Any
    writes: tuple[tuple[str, ...], ...]
    before: tuple[Any, ...]


@dataclass(frozen=True)
class Recovery:
    point: Point
    world: Any
    killed: Outcome
    after: tuple[Outcome, ...]  # every step after the kill, the retry included
    state: Any


class KillSweep:
    def __init__(self, scenario: Scenario, backend: Backend, reference: Reference | None = None) -> None:
        self.scenario, self.backend = scenario, backend
        if reference is not None:
            self.__dict__["reference"] = reference  # shared with another backend's sweep

    @cached_property
    def reference(self) -> Reference:
        world = self.seeded()
        writes, before = [], []
        for step in self.scenario.steps:
            before.append(self.backend.fork(world))
            outcome = self._run(world, step)
            assert outcome.error is None and not outcome.killed, f"undisturbed {step}: {outcome}"
            writes.append(outcome.writes)
        state = self.backend.end_state(world)
        self.backend.check(state)
        return Reference(world, state, tuple(writes), tuple(before))

    def all_points(self) -> list[Point]:
        writes = self.reference.writes
        return [
            Point(i, n)
            for i in self.scenario.killable()
            for n, write in enumerate(writes[i], start=1)
            if self.scenario.kill_at(write)
        ]

    def points(self) -> list[Point]:
        """The kill points this run visits: all of them, or sweep.py's sample."""
        points = self.all_points()
        return points if self.scenario.sample is None else sampled(points, sample=self.scenario.sample)

    def recover(self, point: Point) -> Recovery:
        """Kill at `point`, then what the scenario runs meanwhile, the retry and the rest."""
        steps = self.scenario.steps
        saved = self.reference.before[point.step]
        world = self.backend.fork(saved) if saved is not None else None
        if world is None:
            world = self.seeded()
            for step in steps[: point.step]:
                self._run(world, step)
        killed = self._run(world, steps[point.step], kill_after=point.write)
        meanwhile, rest = self.scenario.recovery(point.step)
        after = tuple(self._run(world, step) for step in (*meanwhile, steps[point.step], *rest))
        return Recovery(point, world, killed, after, self.backend.end_state(world))

    def verify(self, recovery: Recovery) -> None:
        """Assert the recovered run ends where the undisturbed one did."""
        reference, (step, n) = self.reference, recovery.point
        where = f"killed after write {n} of step {step} ({reference.writes[step][n - 1]})"
        assert recovery.killed.killed, f"{where}: it was not killed: {recovery.killed}"
        assert recovery.killed.writes == reference.writes[step][:n], f"{where}: other writes than the undisturbed run's"
        for outcome in recovery.after:
            assert outcome.error is None and not outcome.killed, f"{where}: a later invocation failed: {outcome}"
        try:
            self.backend.check(recovery.state)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from exc
        assert recovery.state == reference.state, f"{where}:\n{self.backend.diff(recovery.state, reference.state)}"

    def check(self, point: Point) -> None:
        self.verify(self.recover(point))

    def seeded(self) -> Any:
        """A fresh world with the scenario's seed run in it."""
        world = self.backend.fresh()
        for step in self.scenario.seed:
            self._run(world, step)
        return world

    def _run(self, world: Any, step: Step, kill_after: int | None = None) -> Outcome:
        if isinstance(step, Invoke):
            return self.backend.invoke(world, step.packets, kill_after)
        assert kill_after is None, f"only an invocation is killed, not {step}"
        if isinstance(step, Arrive):
            for table, packet_id, rows in step.packets:
                self.backend.upload(world, table, packet_id, rows)
        else:
            self.backend.late(world, step.table, step.packet_id)
        return Outcome()


def state_diff(state: tuple[dict, ...], expected: tuple[dict, ...]) -> str:
    """Which keys differ between two end states made of dicts, for an assertion message."""
    lines = []
    for got, want in zip(state, expected):
        for key in sorted(set(got) | set(want)):
            if got.get(key) != want.get(key):
                where = "differs" if key in got and key in want else "only in " + ("the run" if key in got else "the reference")
                lines.append(f"  {key}: {where}")
    return "\n".join(lines[:40])
