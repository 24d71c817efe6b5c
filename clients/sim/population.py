"""The people: households, schools and workplaces, and each person's phone (model, TX power, scan phase)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import Params

STUDENT, WORKER, HOME_ONLY = 0, 1, 2


@dataclass(frozen=True)
class Population:
    household: np.ndarray  # (n,) household id
    role: np.ndarray  # (n,) STUDENT, WORKER or HOME_ONLY
    group: np.ndarray  # (n,) school class or workplace id, -1 for people who stay home
    device: np.ndarray  # (n,) index into Params.device_models
    tx_power: np.ndarray  # (n,) calibrated TX power of the phone, dBm
    scan_phase: np.ndarray  # (n,) seconds: the phone scans at unix times = phase (mod scan period)
    household_pairs: np.ndarray  # (m, 2) every pair of people living together
    neighbour_pairs: np.ndarray  # (m, 2) desk or class neighbours (a ring inside each group)

    @property
    def size(self) -> int:
        return len(self.household)


def _pairs_within(groups: np.ndarray) -> np.ndarray:
    """Every unordered pair of people with the same group id (>= 0): ``(m, 2)``, lower index first."""
    order = np.argsort(groups, kind="stable")
    order = order[groups[order] >= 0]
    ids = groups[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(ids)])
    pairs = [
        np.column_stack(np.triu_indices(size, 1)) + start for start, size in zip(starts, sizes) if size > 1
    ]  # a loop per group, not per person: households have 1-5 members
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    members = order[np.concatenate(pairs)]
    return np.sort(members, axis=1)


def _ring_pairs(groups: np.ndarray) -> np.ndarray:
    """Each member of a group next to the following one (and the last next to the first, in groups of 3 or more)."""
    order = np.argsort(groups, kind="stable")
    order = order[groups[order] >= 0]
    ids = groups[order]
    if not len(ids):
        return np.empty((0, 2), dtype=np.int64)
    same_next = np.r_[ids[1:] == ids[:-1], False]
    pairs = [np.column_stack([order[:-1][same_next[:-1]], order[1:][same_next[:-1]]])]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)] - 1
    ring = ends - starts >= 2
    pairs.append(np.column_stack([order[ends[ring]], order[starts[ring]]]))
    return np.sort(np.concatenate(pairs), axis=1)


def build_population(people: int, params: Params, rng: np.random.Generator) -> Population:
    if people < 2:
        raise ValueError(f"a population needs at least 2 people, got {people}")
    shares = np.array(params.household_sizes) / sum(params.household_sizes)
    sizes = rng.choice(np.arange(1, len(shares) + 1), size=people, p=shares)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), people) + 1]
    household = np.repeat(np.arange(len(sizes)), sizes)[:people]

    role = rng.choice(
        [STUDENT, WORKER, HOME_ONLY],
        size=people,
        p=[params.student_share, params.worker_share, 1 - params.student_share - params.worker_share],
    )
    group = np.full(people, -1, dtype=np.int64)
    students = rng.permutation(np.flatnonzero(role == STUDENT))
    group[students] = np.arange(len(students)) // params.class_size
    workers = rng.permutation(np.flatnonzero(role == WORKER))
    lognormal_sizes = np.clip(rng.lognormal(np.log(params.workplace_median), 0.8, size=len(workers) + 1), 2, 60)
    workplace_sizes = lognormal_sizes.astype(np.int64)
    workplace_of = np.repeat(np.arange(len(workplace_sizes)), workplace_sizes)[: len(workers)]
    group[workers] = workplace_of + (group.max() + 1 if len(students) else 0)

    models = params.device_models
    device = rng.choice(len(models), size=people, p=np.array([m[2] for m in models]) / sum(m[2] for m in models))
    tx_power = np.array([m[1] for m in models], dtype=np.int64)[device]
    scan_phase = rng.integers(0, params.scan_period_seconds, size=people)
    return Population(
        household=household,
        role=role,
        group=group,
        device=device,
        tx_power=tx_power,
        scan_phase=scan_phase,
        household_pairs=_pairs_within(household),
        neighbour_pairs=_ring_pairs(group),
    )
