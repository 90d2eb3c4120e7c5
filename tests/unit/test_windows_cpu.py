"""Windows CPU idle signal (TypeperfCpu): the busiest processor over the whole interval since
the last reading, from one background typeperf that prints a row a second; counter names in
the system's language. Fixtures are typeperf outputs recorded on real machines (sources in
tests/unit/fixtures/agent/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcvfleet_agent.signals import (
    ENGLISH_PROCESSOR_COUNTER,
    PROCESSOR_OBJECT_INDEX,
    PROCESSOR_TIME_INDEX,
    SignalError,
    TypeperfCpu,
    busiest_core_over,
    parse_typeperf,
    processor_counter,
)
from tests.support.typeperf import FakeTypeperf, Spawner

WINDOWS = Path(__file__).parent / "fixtures" / "agent" / "windows"
#: The German system's names for the Processor object (238) and "% Processor Time" (6), as
#: public German Windows documentation and scripts spell them ("\Prozessor(_Total)\Prozessorzeit
#: (%)"); sources in the fixtures README.
GERMAN = {PROCESSOR_OBJECT_INDEX: "Prozessor", PROCESSOR_TIME_INDEX: "Prozessorzeit (%)"}


def recorded(name: str) -> str:
    return (WINDOWS / name).read_text(encoding="utf-8")


def sampled(signal: TypeperfCpu) -> dict[str, object]:
    assert signal.reader is not None
    signal.reader.join(timeout=5)
    reading = signal.sample()
    assert reading is not None
    return reading.values


# -- parsing real outputs ---------------------------------------------------------------------
def test_each_row_of_a_recorded_run_is_read_and_its_closing_words_skipped() -> None:
    # typeperf -si 2 -sc 3 on a 4-processor machine, Japanese closing message; % User Time
    # columns follow the % Processor Time ones and do not count.
    rows = parse_typeperf(recorded("typeperf-4cpu-si2-sc3-ja.txt"))
    assert len(rows) == 3
    assert [round(v, 6) for v in rows[0].values()] == [60.654237, 54.096610, 58.865794, 60.058089]


def test_the_first_row_of_a_run_has_no_values_and_is_left_out() -> None:
    rows = parse_typeperf(recorded("typeperf-4cpu-si1-first-row-blank.csv"))
    assert len(rows) == 3
    assert round(busiest_core_over(rows), 1) == 85.9  # processor 3: (93.9 + 95.5 + 68.3) / 3


def test_an_output_with_only_the_total_has_no_per_processor_column() -> None:
    with pytest.raises(SignalError, match="no per-processor column"):
        parse_typeperf(recorded("typeperf-total-only-ec2.txt"))


# -- the whole interval -----------------------------------------------------------------------
def test_a_reading_averages_every_row_since_the_last_one_per_processor() -> None:
    signal = TypeperfCpu(10, spawn=Spawner(FakeTypeperf(recorded("typeperf-4cpu-si2-sc3-ja.txt"))))
    values = sampled(signal)
    # Processor 0 over the three intervals: (60.65 + 14.77 + 31.04) / 3 = 35.5; typeperf -sc 1
    # would have reported whichever single interval it caught.
    assert values == {"idle": False, "busiestCorePercent": 35.5, "thresholdPercent": 10}


def test_a_one_second_spike_in_a_quiet_interval_leaves_the_host_idle() -> None:
    # The recorded header with ten one-second rows: processor 0 at 60 % for one second (an
    # update scan), every processor at 1 % otherwise. Busiest over the interval: 6.9 %.
    header = recorded("typeperf-4cpu-si2-sc3-ja.txt").splitlines()[0]
    quiet = '"11/23/2023 15:05:{:02d}.011","1.0","1.0","1.0","1.0","1.0"'
    spike = '"11/23/2023 15:05:{:02d}.011","60.0","1.0","1.0","1.0","15.75"'
    rows = [(spike if second == 4 else quiet).format(second) for second in range(10)]
    signal = TypeperfCpu(10, spawn=Spawner(FakeTypeperf("\n".join([header, *rows]) + "\n")))
    values = sampled(signal)
    assert values == {"idle": True, "busiestCorePercent": 6.9, "thresholdPercent": 10}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rows_are_consumed_by_the_reading_that_covers_them() -> None:
    # Given a reading that took every row typeperf had printed
    clock = Clock()
    fake = FakeTypeperf(recorded("typeperf-4cpu-si2-sc3-ja.txt"))
    signal = TypeperfCpu(10, spawn=Spawner(fake), clock=clock)
    sampled(signal)
    newest = parse_typeperf(recorded("typeperf-4cpu-si2-sc3-ja.txt"))[-1]
    # When the next reading comes a second later and typeperf (a row every 1.02-1.03 s) has
    # printed none since, then its newest row stands for that second
    clock.now += 1
    again = signal.sample()
    assert again is not None
    assert again.values["busiestCorePercent"] == round(max(newest.values()), 1)
    # But when it printed nothing for longer, the signal cannot say
    clock.now += 5
    stale = signal.sample()
    assert stale is not None
    assert stale.values["idle"] is None
    assert "no sample since the last reading" in stale.values["error"]


def test_typeperf_runs_in_the_background_at_one_row_a_second_and_ends_by_itself() -> None:
    spawner = Spawner(FakeTypeperf(recorded("typeperf-4cpu-si2-sc3-ja.txt")))
    TypeperfCpu(10, counter=ENGLISH_PROCESSOR_COUNTER, spawn=spawner)
    assert spawner.calls == [
        ["typeperf", "\\Processor(*)\\% Processor Time", "-si", "1", "-sc", "3600"]
    ]


# -- localized counter names ------------------------------------------------------------------
def test_the_counter_path_uses_the_systems_language() -> None:
    assert processor_counter(GERMAN.get) == "\\Prozessor(*)\\Prozessorzeit (%)"
    spawner = Spawner(FakeTypeperf(""))
    TypeperfCpu(10, counter=processor_counter(GERMAN.get), spawn=spawner)
    assert spawner.calls[0][1] == "\\Prozessor(*)\\Prozessorzeit (%)"


def test_without_the_names_the_english_path_is_used() -> None:
    assert processor_counter(lambda _index: None) == ENGLISH_PROCESSOR_COUNTER


def test_a_german_header_and_decimal_commas_are_read() -> None:
    # No public German typeperf output was found: the recorded English run, its names
    # replaced by the German ones and its decimal points by commas (still quoted, as typeperf
    # quotes every field).
    text = recorded("typeperf-4cpu-si2-sc3-ja.txt")
    text = text.replace("\\Processor(", "\\Prozessor(").replace(
        "% Processor Time", "Prozessorzeit (%)"
    )
    text = text.replace(".", ",")
    rows = parse_typeperf(text)
    assert round(busiest_core_over(rows), 1) == 35.5


# -- failures ---------------------------------------------------------------------------------
def test_a_typeperf_that_ended_reports_its_words_and_is_started_again() -> None:
    ended = FakeTypeperf("Error: No valid counters.\r\n", exit_code=2)
    spawner = Spawner(ended, FakeTypeperf(recorded("typeperf-4cpu-si2-sc3-ja.txt")))
    signal = TypeperfCpu(10, spawn=spawner)
    assert signal.reader is not None
    signal.reader.join(timeout=5)
    reading = signal.sample()
    assert reading is not None
    assert reading.values["idle"] is None
    assert "No valid counters" in reading.values["error"]
    assert len(spawner.calls) == 2  # started again for the next reading
    assert sampled(signal)["busiestCorePercent"] == 35.5


def test_without_typeperf_the_signal_says_so() -> None:
    signal = TypeperfCpu(10, spawn=Spawner(FileNotFoundError(2, "not found")))
    reading = signal.sample()
    assert reading is not None
    assert reading.values["idle"] is None
    assert reading.values["error"] == "typeperf is not installed"


def test_a_value_that_is_not_a_number_is_an_error() -> None:
    text = recorded("typeperf-4cpu-si2-sc3-ja.txt").replace('"54.096610"', '"n/a"', 1)
    with pytest.raises(SignalError, match="printed 'n/a'"):
        parse_typeperf(text)
