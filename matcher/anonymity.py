"""The anonymity hold (docs/privacy.md, "The anonymity set"): which pending keys a batch cut now publishes, and
which it holds back.

A section of a batch is the anonymity set of every match in it, so a section is cut only once its keys belong to
at least K cases, or once its oldest key has waited the deadline. Held keys stay pending and are looked at again
by the next publishing run (matcher/publisher.py). The rule is pure: pending keys and a configuration in, a cut
out; the settings (matcher/config.py) and the publisher take their defaults from here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from exposure.v1 import config_pb2

from .batches import SectionClass, section_classes, section_of
from .intervals import SECONDS_PER_DAY
from .model import VenueHour
from .store import PendingKey

# A section is published once its keys belong to this many cases (submissions) ...
DEFAULT_ANONYMITY_MIN_CASES = 5
# ... or once its oldest key has been publishable this long, however few cases it has.
DEFAULT_ANONYMITY_DEADLINE_SECONDS = SECONDS_PER_DAY


@dataclass(frozen=True)
class HeldSection:
    """One section's keys, held: they belong to ``cases`` cases, fewer than K, and wait until ``until``."""

    section: SectionClass
    keys: list[PendingKey]
    cases: int
    until: int


@dataclass(frozen=True)
class RegionCut:
    """What one region's pending keys do in a batch cut now (hold_small_sections)."""

    released: list[PendingKey]  # the batch: keys of the sections that publish, and keys that publish nothing
    sections: int  # sections the batch publishes: 0 makes an empty batch
    held: list[HeldSection]

    @property
    def held_keys(self) -> list[PendingKey]:
        return [item for section in self.held for item in section.keys]


def publishable_since(item: PendingKey) -> int:
    """When a pending key could first have been published: the later of its arrival and the end of its embargo.
    The deadline counts from here, so that a key does not spend its wait while it may not be published anyway."""
    return max(item.received_at, item.key.publish_after())


def hold_small_sections(
    items: list[PendingKey], config: config_pb2.ExposureConfig, *, now: int, min_cases: int, deadline: int
) -> RegionCut:
    """Splits one region's pending keys into what a batch cut at ``now`` publishes and what it holds.

    Keys are grouped by the section they would be published in (batches.section_of). Whoever hears identifiers
    that match in a section learns that they belong to the section's cases, and nothing links them further
    (docs/spec.md, "Privacy"): a section of one case links all of its matches to one person. So a section whose
    keys belong to fewer than ``min_cases`` distinct cases is held, unless its oldest key has been publishable for
    ``deadline`` seconds: then it is published anyway, since a warning held back for ever protects nobody. Cases
    are counted, not keys (one person's 10 daily keys are one case), and a case with keys in two sections counts in
    each: each section is an anonymity set of its own. Keys that publish nothing go with the batch: no section
    (report type, infectiousness NONE), or no interval left after contact-interval pruning. Such a key puts no
    element in its section, so its case must not count towards the section's K. Warned venue hours are never held:
    their section links nothing to anybody without the venue's QR code (docs/spec.md, "Venues").
    """
    classes = section_classes(config)
    by_section: dict[SectionClass, list[PendingKey]] = defaultdict(list)
    released = [item for item in items if isinstance(item.key, VenueHour)]
    sections = 1 if released else 0  # the venue section
    for item in items:
        if isinstance(item.key, VenueHour):
            continue
        section = section_of(item.key, config, classes)
        if section is None or not item.key.elements:
            released.append(item)
        else:
            by_section[section].append(item)
    held: list[HeldSection] = []
    for section, keys in sorted(by_section.items()):
        cases = len({item.case for item in keys})
        since = min(publishable_since(item) for item in keys)
        # A key received "later" than now (a replica whose clock is behind the submitter's) has waited 0.
        if cases < min_cases and max(0, now - since) < deadline:
            held.append(HeldSection(section, keys, cases, since + deadline))
        else:
            released += keys
            sections += 1
    return RegionCut(released, sections, held)
