"""The phone's own daily keys (TEKs): a new random key each UTC day, and what it broadcasts at any moment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from matcher import crypto
from matcher.intervals import INTERVALS_PER_DAY, day_start, interval_number
from matcher.model import MAX_TX_POWER_DBM, MIN_TX_POWER_DBM

from .store import PhoneStore

# The calibrated TX power this phone advertises in its Bluetooth metadata (GAEN's AEM), in dBm.
DEFAULT_TX_POWER_DBM = -8


@dataclass(frozen=True)
class Broadcast:
    """What the phone advertises during one interval."""

    interval: int
    rpi: bytes
    aem: bytes


def key_for_day(store: PhoneStore, interval: int) -> tuple[int, bytes]:
    """The key of the UTC day containing ``interval`` (made on first use); returns (rolling_start, tek)."""
    start = day_start(interval)
    return start, store.add_own_key(start, crypto.new_tek(), INTERVALS_PER_DAY)


def tx_power(store: PhoneStore) -> int:
    """This phone's calibrated TX power in dBm (set once, at `init`)."""
    return store.get_int("tx_power_dbm", DEFAULT_TX_POWER_DBM)


def set_tx_power(store: PhoneStore, dbm: int) -> None:
    if not MIN_TX_POWER_DBM <= dbm <= MAX_TX_POWER_DBM:
        raise ValueError(f"TX power must be {MIN_TX_POWER_DBM}..{MAX_TX_POWER_DBM} dBm, got {dbm}")
    store.put("tx_power_dbm", str(dbm).encode())


def broadcast_at(store: PhoneStore, now: int) -> Broadcast:
    """The RPI and AEM the phone advertises at unix time ``now``."""
    interval = interval_number(now)
    _, tek = key_for_day(store, interval)
    rpi = crypto.rpi_at(tek, interval)
    aem = crypto.encrypt_metadata(crypto.aemk(tek), rpi, crypto.ble_metadata(tx_power(store)))
    return Broadcast(interval, rpi, aem)


def day_broadcasts(store: PhoneStore, interval: int) -> tuple[int, np.ndarray, np.ndarray]:
    """What the phone advertises in every interval of the UTC day that contains ``interval``, as broadcast_at
    gives it one interval at a time: (the day's first interval, RPIs ``(144, 16)``, AEMs ``(144, 4)``), one AES
    call for each array. For a scanner that records many phones over a whole day (the simulator)."""
    start, tek = key_for_day(store, interval)
    rpis = crypto.rpis(tek, start, INTERVALS_PER_DAY)
    metadata = np.frombuffer(crypto.ble_metadata(tx_power(store)), dtype=np.uint8)
    aems = crypto.metadata_keystream(crypto.aemk(tek), rpis)[:, : crypto.METADATA_BYTES] ^ metadata
    return start, rpis, aems


def keys_to_share(store: PhoneStore, now: int) -> list[tuple[int, bytes, int]]:
    """(rolling_start, tek, rolling_period) of the keys to upload on diagnosis: those of the retention window that
    have expired. The current day's key is still being broadcast, so, as in GAEN, it is shared only once it has
    expired (the next share, or the server's embargo, takes care of it)."""
    current = interval_number(now)
    return [(start, tek, period) for start, tek, period in store.own_keys() if start + period <= current]
