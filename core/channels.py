"""Channels of an MV2 file, computed from its two header lines (the data contract).

- the master's serial is column 0 of line 1; a column whose serial differs is a slave's;
- the master is *tri* when its labels include ``Ph 1``, ``Ph 2`` and ``Ph 3``, else *mono*;
  in V003 the JSON ``MasterType`` decides when present;
- each device's columns are counted in order: master tri ``U1 U2 U3 Ch1 Ch2 ...``,
  master mono ``U1 Ch1 ...``, slave ``Ch1 Ch2 ...``;
- ``channel_id`` is ``M<master>_<label>`` or ``M<master>_S<slave>_<label>``, the field key
  ``<channel_id>_<unit>``; a label ``Ph 1 V`` is channel name ``Ph 1`` with unit ``V``;
- the backslashes InfluxDB cannot store are dropped from names and units (a name ending in
  ``\\``; in a unit, also one before ``,`` ``=`` ``"``), see ``core/lineprotocol.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import FileDataError
from core.formats import Header
from core.lineprotocol import storable_field_key_part, storable_tag_value
from core.names import is_safe_name

TRI_PHASE_NAMES = frozenset({"Ph 1", "Ph 2", "Ph 3"})


@dataclass(frozen=True)
class Channel:
    """One value column of the file and the tags of its points."""

    device_sn: str
    device_type: str  # "master" or "slave"
    device_subtype: str | None  # "mono" / "tri" for the master, None for slaves
    label: str  # U1, Ch3...
    name: str  # the name the logger gives: "Ph 1", "Voie1", a custom "minipince"...
    unit: str
    channel_id: str
    field_key: str

    def tags(self, campaign: str, master_sn: str) -> dict[str, str]:
        tags = {
            "campaign": campaign,
            "channel_id": self.channel_id,
            "channel_label": self.label,
            "channel_name": self.name,
            "channel_unit": self.unit,
            "device": "MV2",
            "device_master_sn": master_sn,
            "device_sn": self.device_sn,
            "device_type": self.device_type,
        }
        if self.device_subtype is not None:
            tags["device_subtype"] = self.device_subtype
        return tags


def split_label(label: str) -> tuple[str, str]:
    """``"Ph 1 V"`` → ``("Ph 1", "V")``: the unit is the last space-separated word."""
    name, _, unit = label.strip().rpartition(" ")
    return name.strip(), unit


def master_subtype(header: Header, path: Path) -> str:
    """``"tri"`` or ``"mono"`` for the master of this file."""
    declared = header.metadata.get("MasterType")
    if declared is not None:
        subtype = str(declared).strip().lower()
        if subtype not in ("mono", "tri"):
            raise FileDataError(
                path,
                header.metadata_line,
                "unknown_master_type",
                f"MasterType {declared!r} is neither Mono nor Tri",
            )
        return subtype
    master = header.serials[0]
    names = {
        split_label(label)[0]
        for serial, label in zip(header.serials[1:], header.labels, strict=True)
        if serial == master
    }
    return "tri" if names >= TRI_PHASE_NAMES else "mono"


def build_channels(header: Header, path: Path) -> list[Channel]:
    """The channels of a file, in column order; raises FileDataError for unusable labels."""
    master_sn = header.serials[0]
    for serial in header.serials:
        if not is_safe_name(serial):
            raise FileDataError(
                path,
                header.serial_line,
                "bad_serial",
                f"device serial {serial!r} is not a valid serial number",
            )
    subtype = master_subtype(header, path)
    voltage_count = 3 if subtype == "tri" else 1
    position: dict[str, int] = {}
    channels: list[Channel] = []
    for column, (serial, label) in enumerate(
        zip(header.serials[1:], header.labels, strict=True), start=1
    ):
        name, unit = split_label(label)
        # What InfluxDB cannot store as is (a trailing backslash...): see core/lineprotocol.py.
        name, unit = storable_tag_value(name), storable_field_key_part(unit)
        if not name or not unit or unit.isdigit():  # "Ph 1": a number is not a unit
            raise FileDataError(
                path,
                header.label_line,
                "bad_label",
                f"column {column + 1} label {label!r} is not '<channel name> <unit>'",
            )
        index = position.get(serial, 0)
        position[serial] = index + 1
        if serial == master_sn:
            if index < voltage_count:
                channel_label = f"U{index + 1}"
            else:
                channel_label = f"Ch{index - voltage_count + 1}"
            channel_id = f"M{master_sn}_{channel_label}"
            device_type, device_subtype = "master", subtype
        else:
            channel_label = f"Ch{index + 1}"
            channel_id = f"M{master_sn}_S{serial}_{channel_label}"
            device_type, device_subtype = "slave", None
        channels.append(
            Channel(
                device_sn=serial,
                device_type=device_type,
                device_subtype=device_subtype,
                label=channel_label,
                name=name,
                unit=unit,
                channel_id=channel_id,
                field_key=f"{channel_id}_{unit}",
            )
        )
    return channels
