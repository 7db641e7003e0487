"""How a survey is made (``hybrid survey``'s flags, ``hybrid serve --survey``'s, and
``infer.py``'s ``survey.*`` keys), declared once; and what the survey folder holds."""

from __future__ import annotations

from dataclasses import dataclass

from hybrid.errors import DataError
from hybrid.survey.codes import DEFAULT_STANDARD, STANDARDS
from hybrid.survey.observations import CONTINUOUS_M
from hybrid.util.cli import option

OBSERVATIONS_CSV, OBSERVATIONS_JSON, REPORT_FILE, PHOTOS_DIR = (
    "observations.csv", "observations.json", "report.html", "photos",
)  # fmt: skip
DISTANCE_COLUMNS = ("distance_m", "distance_source")


@dataclass
class SurveyOptions:
    """Where distances come from (one of the counter, ``telemetry``, ``speed``), the standard and
    code map, the header file, and when a defect is continuous."""

    counter_box: str = option(
        "", "where the distance counter is, x0,y0,x1,y1 pixels (default: found in the first frames)"
    )
    telemetry: str = option("", "a CSV of time_s,distance_m from the crawler, instead of the counter")
    speed: float = option(0.0, "a constant crawler speed in m/s from --start-m, instead of the counter")
    start_m: float = option(0.0, "the distance at the video's start, with --speed")
    max_speed_m_s: float = option(
        1.0, "a counter reading further from its neighbours than this speed allows is rejected"
    )
    standard: str = option(DEFAULT_STANDARD, f"the codes of {' or '.join(STANDARDS)}")
    codes: str = option("", "a YAML file mapping model labels to codes, replacing the built-in map's entries")
    header: str = option("", "a YAML file with the survey header (section, from_node, to_node, direction, date, ...)")
    continuous_m: float = option(CONTINUOUS_M, "a defect longer than this along the pipe is a start/finish pair, m")

    def __post_init__(self):
        given = [name for name in ("counter_box", "telemetry", "speed") if getattr(self, name)]
        if len(given) > 1:
            raise DataError(
                f"--{given[0].replace('_', '-')} and --{given[1].replace('_', '-')}: give one distance source"
            )
        if self.speed < 0 or self.max_speed_m_s <= 0 or self.continuous_m <= 0:
            raise DataError("--speed must be >= 0, --max-speed-m-s and --continuous-m > 0")

    @property
    def distance_source(self) -> str:
        """``telemetry``, ``speed`` or ``counter``."""
        return "telemetry" if self.telemetry else "speed" if self.speed else "counter"
