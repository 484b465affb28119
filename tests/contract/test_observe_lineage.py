"""OpenLineage events of real `dpone run`s: START then COMPLETE, FAIL or ABORT, to a file and to an
HTTP endpoint (a real server on 127.0.0.1), each event validated against the JSON Schema its
`schemaURL` names and each facet against its `_schemaURL`'s (tests/data/openlineage, whose
README says where those schemas come from), with their `$ref`s resolved between the files.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from tests.tools.http_receiver import Receiver, Silent, refused_url
from tests.tools.observe_project import DPONE, PIPELINE, ROWS, SECRET, ObserveProject

SPEC = Path(__file__).resolve().parents[1] / "data" / "openlineage" / "spec"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
BOUND_SECONDS = 20


def _registry() -> Registry:
    resources = []
    for path in sorted(SPEC.rglob("*.json")):
        document = json.loads(path.read_text())
        resources.append((document["$id"], Resource.from_contents(document)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def check(document: Any, url: str) -> None:
    """`document` against the schema at `url` (a spec URL with its #/$defs/... fragment)."""
    validator = jsonschema.Draft202012Validator(
        {"$ref": url}, registry=REGISTRY, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(document)


def facets_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = [*event["run"].get("facets", {}).values(), *event["job"].get("facets", {}).values()]
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        for key in ("facets", "inputFacets", "outputFacets"):
            found += dataset.get(key, {}).values()
    return found


def validate(event: dict[str, Any]) -> None:
    assert event["schemaURL"] == RUN_EVENT
    check(event, event["schemaURL"])
    for facet in facets_of(event):
        check(facet, facet["_schemaURL"])  # a facet whose schema is unknown here fails too


def events(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    found = [json.loads(line) for line in lines]
    for event in found:
        validate(event)
    return found


@pytest.fixture
def project(tmp_path: Path) -> ObserveProject:
    return ObserveProject(tmp_path)


def lineage_file(project: ObserveProject) -> Path:
    return project.root / ".dpone" / "lineage.jsonl"


class TestFile:
    def test_a_good_run_is_a_start_and_a_complete(self, project: ObserveProject) -> None:
        project.settings({"env": "prod", "lineage": {"file": ".dpone/lineage.jsonl"}})
        res = project.run()
        assert res.rc == 0, res.err
        start, end = events(lineage_file(project))
        assert [start["eventType"], end["eventType"]] == ["START", "COMPLETE"]
        assert start["run"]["runId"] == end["run"]["runId"]
        assert start["job"] == end["job"]
        assert (end["job"]["namespace"], end["job"]["name"]) == ("dpone-prod", PIPELINE)
        assert end["job"]["facets"]["jobType"]["processingType"] == "BATCH"
        assert start["inputs"] == [] and start["outputs"] == []
        root = str(project.root)
        inputs = {d["name"]: d for d in end["inputs"]}
        assert set(inputs) == {f"{root}/{s}.csv" for s in ROWS}
        for stream, count in ROWS.items():
            dataset = inputs[f"{root}/{stream}.csv"]
            assert dataset["namespace"] == "file"
            assert dataset["inputFacets"]["inputStatistics"]["rowCount"] == count
            fields = dataset["facets"]["schema"]["fields"]
            assert [(f["name"], f["type"]) for f in fields] == [
                ("id", "integer"),
                ("name", "string"),
                ("updated_at", "string(date-time)"),
            ]
        outputs = {d["name"]: d for d in end["outputs"]}
        assert set(outputs) == {f"{root}/out/{s}.jsonl" for s in ROWS}
        assert {d["outputFacets"]["outputStatistics"]["rowCount"] for d in outputs.values()} == set(ROWS.values())
        assert end["run"]["facets"]["processing_engine"]["name"] == "dpone"
        assert "errorMessage" not in end["run"]["facets"]

    def test_a_failed_run_is_a_start_and_a_fail_with_the_error(self, project: ObserveProject) -> None:
        project.settings({"lineage": {"file": ".dpone/lineage.jsonl", "namespace": "etl"}})
        res = project.run("tap-csv", "target-broken")
        assert res.rc == 70
        start, end = events(lineage_file(project))
        assert [start["eventType"], end["eventType"]] == ["START", "FAIL"]
        assert end["job"]["namespace"] == "etl"
        error = end["run"]["facets"]["errorMessage"]
        assert "target-broken" in error["message"] and "cannot reach the warehouse" in error["message"]
        assert error["programmingLanguage"] == "python"
        assert res.report()["error"] == error["message"]
        # What a failed run's target kept is not known here: no count of rows written is claimed.
        assert all(d["outputFacets"] == {} for d in end["outputs"]), end["outputs"]

    def test_an_interrupted_run_is_an_abort(self, project: ObserveProject) -> None:
        project.settings({"lineage": {"file": ".dpone/lineage.jsonl"}})
        proc = subprocess.Popen(
            [DPONE, *project.argv("tap-slow", "target-jsonl")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + BOUND_SECONDS
            running = project.root / "slow-tap.running"
            while time.monotonic() < deadline and not (lineage_file(project).exists() and running.exists()):
                time.sleep(0.05)  # START is out and records are moving
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=BOUND_SECONDS)
        finally:
            proc.kill()
        assert proc.returncode == 128 + signal.SIGTERM, err
        start, end = events(lineage_file(project))
        assert [start["eventType"], end["eventType"]] == ["START", "ABORT"]
        assert "interrupted by SIGTERM" in end["run"]["facets"]["errorMessage"]["message"]
        (ticks,) = end["inputs"]
        assert ticks["inputFacets"]["inputStatistics"]["rowCount"] == json.loads(out)["streams"][0]["rows_in"] > 0

    def test_each_attempt_of_a_retried_run_is_a_run_of_its_own(self, project: ObserveProject) -> None:
        project.settings(
            {"lineage": {"file": ".dpone/lineage.jsonl"}, "retries": {"attempts": 2, "backoff_seconds": 0}}
        )
        assert project.run("tap-flaky", "target-jsonl").rc == 75
        found = events(lineage_file(project))
        assert [e["eventType"] for e in found] == ["START", "FAIL", "START", "FAIL"]
        first, second = found[0]["run"]["runId"], found[2]["run"]["runId"]
        assert first != second
        assert [e["run"]["runId"] for e in found] == [first, first, second, second]

    def test_a_file_that_cannot_be_written_fails_no_run(self, project: ObserveProject) -> None:
        (project.root / "taken").write_text("a file where a directory should be")
        project.settings({"lineage": {"file": "taken/lineage.jsonl"}})
        res = project.run()
        assert res.rc == 0, res.err
        assert res.report()["status"] == "success"
        assert "LineageObserver could not report the run" in res.err


class TestHttp:
    def test_events_are_posted_with_the_api_key(self, project: ObserveProject, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OL_KEY", SECRET)
        with Receiver(status=201) as marquez:
            project.settings({"lineage": {"url": marquez.url, "api_key": "${OL_KEY}"}})
            res = project.run()
            assert res.rc == 0, res.err
            posted = marquez.wait_for(2)
        assert [(r.method, r.path) for r in posted] == [("POST", "/api/v1/lineage")] * 2
        assert {r.headers["authorization"] for r in posted} == {f"Bearer {SECRET}"}
        assert {r.headers["content-type"] for r in posted} == {"application/json"}
        sent = [json.loads(r.body) for r in posted]
        for event in sent:
            validate(event)
        assert [e["eventType"] for e in sent] == ["START", "COMPLETE"]
        assert SECRET not in res.out + res.err

    def test_an_endpoint_that_is_down_fails_no_run_and_the_file_still_gets_the_events(
        self, project: ObserveProject
    ) -> None:
        url = refused_url()
        project.settings({"lineage": {"url": url, "file": ".dpone/lineage.jsonl", "timeout_seconds": 1}})
        started = time.monotonic()
        res = project.run()
        assert res.rc == 0, res.err
        assert time.monotonic() - started < BOUND_SECONDS
        warnings = [line for line in res.err.splitlines() if "LineageObserver" in line]
        assert len(warnings) == 1 and "WARNING" in warnings[0], res.err
        assert "START event not sent" in warnings[0] and "COMPLETE event not sent" in warnings[0]
        assert url in warnings[0]
        assert [e["eventType"] for e in events(lineage_file(project))] == ["START", "COMPLETE"]

    def test_an_endpoint_that_never_answers_holds_the_run_at_most_the_timeout(self, project: ObserveProject) -> None:
        with Silent() as hung:
            project.settings({"lineage": {"url": hung.url, "timeout_seconds": 1}})
            started = time.monotonic()
            res = project.subprocess()
            took = time.monotonic() - started
        assert res.rc == 0, res.err
        assert took < BOUND_SECONDS
        assert "COMPLETE event not sent" in res.err and "timed out" in res.err, res.err


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The COMPLETE event of a good run."""
    project = ObserveProject(tmp_path_factory.mktemp("good"))
    project.settings({"lineage": {"file": ".dpone/lineage.jsonl"}})
    assert project.run().rc == 0
    _, end = events(lineage_file(project))
    return end


class TestSchemas:
    """The schemas have teeth: what the specification forbids, they reject."""

    @pytest.mark.parametrize(
        "spoil",
        [
            pytest.param(lambda e: e["run"].update(runId="run-17"), id="run id not a UUID"),
            pytest.param(lambda e: e.update(eventType="DONE"), id="unknown event type"),
            pytest.param(lambda e: e.update(eventTime="yesterday"), id="event time not a date-time"),
            pytest.param(lambda e: e["job"].pop("name"), id="job without a name"),
            pytest.param(lambda e: e["inputs"][0].pop("namespace"), id="dataset without a namespace"),
            pytest.param(lambda e: e.pop("producer"), id="no producer"),
        ],
    )
    def test_a_spoiled_event_is_rejected(self, good: dict[str, Any], spoil: Any) -> None:
        event = json.loads(json.dumps(good))
        spoil(event)
        with pytest.raises(jsonschema.ValidationError):
            check(event, RUN_EVENT)

    @pytest.mark.parametrize(
        ("facet", "spoil"),
        [
            ("schema", lambda f: f["fields"][0].pop("name")),
            ("schema", lambda f: f.pop("_producer")),
            ("inputStatistics", lambda f: f.update(rowCount="seven")),
        ],
    )
    def test_a_spoiled_facet_is_rejected(self, good: dict[str, Any], facet: str, spoil: Any) -> None:
        dataset = json.loads(json.dumps(good["inputs"][0]))
        found = {**dataset["facets"], **dataset["inputFacets"]}[facet]
        spoil(found)
        with pytest.raises(jsonschema.ValidationError):
            check(found, found["_schemaURL"])


class TestNoSecrets:
    def test_database_datasets_are_named_from_addresses_never_from_passwords(self, project: ObserveProject) -> None:
        project.settings({"lineage": {"file": ".dpone/lineage.jsonl"}})
        res = project.run("tap-pg", "target-pg")
        assert res.rc == 0, res.err
        _, end = events(lineage_file(project))
        inputs = [(d["namespace"], d["name"]) for d in end["inputs"]]
        outputs = [(d["namespace"], d["name"]) for d in end["outputs"]]
        assert inputs == [("postgres://db.example:5433", "app.public.people")]
        assert outputs == [("postgres://warehouse.example:5433", "app.analytics.public_people")]
        assert SECRET not in lineage_file(project).read_text() + res.out + res.err
