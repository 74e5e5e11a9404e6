"""`tagger serve`: the API's answers and errors, micro-batching, uploads, the corrections
file, security, and a real server that finishes its requests on a stop signal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from conftest import one_line_error, train_toy
from fastapi.testclient import TestClient

from tagger_core import Tagger, read_records
from tagger_core.cli import cli
from tagger_core.errors import DataError, TaggerError
from tagger_core.registry import resolve_taxonomy
from tagger_core.scores import Scores
from tagger_core.serve.app import create_app
from tagger_core.serve.batching import MicroBatcher
from tagger_core.serve.corrections import (
    CorrectionLog,
    canonical_labels,
    label_set_problem,
)
from tagger_core.serve.predict import PredictPath
from tagger_core.serve.settings import ServeSettings

NAMES = ["故宫博物院", "迪士尼乐园", "黄山风景区", "乌镇古镇"]


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_toy(tmp_path_factory.mktemp("served"))


def client_for(tagger_dir: Path, **settings: object) -> TestClient:
    app = create_app(ServeSettings(taggers={"toy": tagger_dir}, **settings))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(tagger_dir: Path, tmp_path: Path):
    with client_for(
        tagger_dir, corrections=tmp_path / "reviewed.jsonl", anonymous_review=True
    ) as client:
        assert wait_ready(client)
        yield client


def wait_ready(client: TestClient, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return True
        time.sleep(0.02)
    return False


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert "Traceback" not in response.text
    assert body["error"]["status"] == response.status_code
    return body["error"]


# -- prediction -------------------------------------------------------------------------------


def test_predict_answers_as_the_tagger_does_offline(client: TestClient, tagger_dir: Path) -> None:
    offline = Tagger.load(tagger_dir).predict(NAMES)
    response = client.post("/v1/taggers/toy/predict", json={"texts": NAMES})
    assert response.status_code == 200
    body = response.json()
    assert body["tagger"] == "toy"
    taxonomy = resolve_taxonomy("attractions")
    for served, expected in zip(body["predictions"], offline, strict=True):
        assert served["text"] == expected.text
        assert served["labels"] == expected.labels
        assert served["display_names"] == [taxonomy.label(x).display_name for x in expected.labels]
        assert served["scores"].keys() == expected.scores.keys()
        for label, score in expected.scores.items():
            assert served["scores"][label] == pytest.approx(score, abs=1e-6)
    one = client.post("/v1/taggers/toy/predict", json={"text": NAMES[0], "scores": False})
    assert one.json()["predictions"][0]["labels"] == offline[0].labels
    assert one.json()["predictions"][0]["scores"] is None


def test_a_rule_can_be_overridden_per_request(client: TestClient) -> None:
    response = client.post(
        "/v1/taggers/toy/predict",
        json={"texts": NAMES, "rule": "top-k", "rule_params": {"k": 2}},
    )
    assert response.status_code == 200, response.text
    assert all(len(p["labels"]) == 2 for p in response.json()["predictions"])
    bad = client.post("/v1/taggers/toy/predict", json={"text": "x", "rule": "no-such-rule"})
    assert bad.status_code == 422
    assert error_of(bad)["field"] == "rule"
    assert "no-such-rule" in error_of(bad)["message"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"texts": ["故宫", " "]}, 422, "texts[1]"),
        ({"texts": []}, 422, "texts"),
        ({}, 422, "texts"),
        ({"text": "故宫", "texts": ["故宫"]}, 422, "texts"),
        ({"texts": "故宫"}, 422, "texts"),
        ({"text": 3}, 422, "text"),
        ({"text": "故宫", "colour": "red"}, 422, "colour"),
        ({"texts": ["故"] * 11}, 413, None),
        ({"text": "故" * 51}, 413, None),
    ],
)
def test_bad_requests_get_a_json_error_naming_the_field(
    tagger_dir: Path, body: dict, status: int, field: str | None
) -> None:
    with client_for(tagger_dir, max_texts=10, max_chars=50) as client:
        assert wait_ready(client)
        response = client.post("/v1/taggers/toy/predict", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    if field is not None:
        assert error["field"] == field
        assert error["message"].startswith(field)


def test_malformed_json_unknown_tagger_and_oversized_bodies(tagger_dir: Path) -> None:
    with client_for(tagger_dir, max_body_bytes=2048) as client:
        assert wait_ready(client)
        broken = client.post(
            "/v1/taggers/toy/predict",
            content=b'{"texts": ["a"',
            headers={"content-type": "application/json"},
        )
        assert broken.status_code == 422
        assert "not valid JSON" in error_of(broken)["message"]
        unknown = client.post("/v1/taggers/nope/predict", json={"text": "故宫"})
        assert unknown.status_code == 404
        assert "nope" in error_of(unknown)["message"]
        big = client.post("/v1/taggers/toy/predict", json={"texts": ["故宫博物院"] * 400})
        assert big.status_code == 413
        assert "2048 bytes" in error_of(big)["message"]

        def chunks():  # no Content-Length: refused as the body passes the limit
            for _ in range(100):
                yield b" " * 100

        chunked = client.post(
            "/v1/taggers/toy/predict",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413
        still = client.post("/v1/taggers/toy/predict", json={"text": "故宫博物院"})
        assert still.status_code == 200
        # a JSON body claiming to be an upload is still held to the JSON limit
        disguised = client.post(
            "/v1/taggers/toy/predict",
            content=json.dumps({"texts": ["故宫博物院"] * 400}).encode(),
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
        assert disguised.status_code == 413
        assert "2048 bytes" in error_of(disguised)["message"]


def test_an_unexpected_failure_is_a_500_without_a_traceback(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = client.app.state.served.taggers["toy"]

    def broken(texts: list[str]) -> Scores:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(served.batcher, "score", broken)
    response = client.post("/v1/taggers/toy/predict", json={"text": "故宫"})
    assert response.status_code == 500
    assert "secret" not in response.text
    assert error_of(response)["message"].startswith("internal error")


def test_the_tagger_list_describes_taxonomy_encoder_and_validation(
    client: TestClient,
) -> None:
    body = client.get("/v1/taggers").json()
    (info,) = body["taggers"]
    assert info["name"] == "toy"
    assert info["encoder"]["name"] == "tfidf"
    labels = {label["id"]: label for label in info["taxonomy"]["labels"]}
    assert labels["Museums & Galleries"]["name"] == "博物馆与美术馆"
    assert labels["Museums & Galleries"]["description"]
    assert info["taxonomy"]["constraints"]["min_labels"] == 1
    assert body["corrections"] is True
    assert client.get("/v1/taggers/toy").json() == info
    assert "openapi" in client.get("/openapi.json").json()


def test_the_predict_operation_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/taggers/{name}/predict"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"text", "texts", "rule", "rule_params", "scores"} <= set(body["properties"])
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictResponse"
    }


def test_the_predict_route_answers_as_the_path_in_front_of_it(tagger_dir: Path) -> None:
    """Predict requests are answered before FastAPI routes them; its documenting route,
    reached with that path taken out, gives the same answers and errors."""
    settings = ServeSettings(taggers={"toy": tagger_dir}, token="s3cret", max_texts=10)
    routed = create_app(settings)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not PredictPath]
    good = {"Authorization": "Bearer s3cret"}
    cases: list[tuple[dict, bytes]] = [
        (good, json.dumps({"texts": NAMES, "rule": "top-k", "rule_params": {"k": 2}}).encode()),
        (good, json.dumps({"text": "故宫", "scores": False}).encode()),
        ({}, json.dumps({"text": "故宫"}).encode()),
        (good, b'{"texts": ["a"'),
        (good, json.dumps({"texts": ["故宫", 3]}).encode()),
        (good, json.dumps({"texts": ["故"] * 11}).encode()),
        (good, json.dumps({"text": "  "}).encode()),
        (good, json.dumps({"text": "故宫", "rule": "no-such-rule"}).encode()),
    ]
    answers = []
    for app in (create_app(settings), routed):
        with TestClient(app, raise_server_exceptions=False) as open_:
            while open_.get("/readyz", headers=good).status_code != 200:
                time.sleep(0.02)
            answers.append(
                [
                    (answer.status_code, answer.json())
                    for headers, body in cases
                    for answer in [
                        open_.post(
                            "/v1/taggers/toy/predict",
                            content=body,
                            headers={**headers, "content-type": "application/json"},
                        )
                    ]
                ]
            )
    fast, slow = answers
    assert [status for status, _ in fast] == [200, 200, 401, 422, 422, 413, 422, 422]
    assert fast == slow


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_load_every_asset_from_the_server(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert assets and all(asset.startswith("/static-docs/") for asset in assets), assets
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 100, asset
    # the page reads the API's own schema from this server
    assert "/openapi.json" in html.text


def test_readyz_waits_for_every_tagger(tagger_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tagger_core.serve.taggers as taggers_module

    release = threading.Event()
    real_load = Tagger.load

    def slow_load(path: Path, **options: object) -> Tagger:
        release.wait(10)
        return real_load(path, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(taggers_module.Tagger, "load", slow_load)
    with client_for(tagger_dir) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        loading = client.get("/readyz")
        assert loading.status_code == 503
        assert loading.json()["pending"] == ["toy"]
        assert client.post("/v1/taggers/toy/predict", json={"text": "故宫"}).status_code == 503
        release.set()
        assert wait_ready(client)


def test_a_tagger_that_fails_to_load_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{", encoding="utf-8")
    failures: list[str] = []
    app = create_app(ServeSettings(taggers={"broken": broken}), on_failure=failures.append)
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while not failures and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = client.get("/readyz")
    assert failures and "corrupt manifest" in failures[0]
    assert ready.status_code == 503
    assert ready.json()["status"] == "failed"


# -- micro-batching ---------------------------------------------------------------------------


class Fake:
    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits

    def rows(self, start: int, end: int) -> Fake:
        return Fake(self.logits[start:end])


def fake_scores(texts: list[str]) -> Fake:
    return Fake(np.array([[len(t), -len(t)] for t in texts], dtype=float))


def test_requests_that_arrive_together_are_scored_together() -> None:
    calls: list[int] = []

    def slow(texts: list[str]) -> Fake:
        calls.append(len(texts))
        time.sleep(0.05)
        return fake_scores(texts)

    batcher = MicroBatcher(slow, wait=0.005, max_batch=64)
    texts = ["x" * n for n in range(1, 65)]
    with ThreadPoolExecutor(64) as pool:
        futures = list(pool.map(lambda t: batcher.submit([t]), texts))
        results = [f.result(10) for f in futures]
    batcher.close()
    for text, scores in zip(texts, results, strict=True):
        np.testing.assert_array_equal(scores.logits, [[len(text), -len(text)]])
    assert sum(calls) == 64
    assert len(calls) <= 8, calls  # 64 one-name requests, a handful of scoring calls
    assert max(calls) <= 64


def test_a_batch_never_exceeds_its_bound_and_a_failure_reaches_every_request() -> None:
    calls: list[int] = []

    def record(texts: list[str]) -> Fake:
        calls.append(len(texts))
        if "boom" in texts:
            raise ValueError("boom")
        time.sleep(0.02)
        return fake_scores(texts)

    batcher = MicroBatcher(record, wait=0.01, max_batch=10)
    futures = [batcher.submit(["a", "b", "c"]) for _ in range(10)]
    assert all(f.result(10).logits.shape == (3, 2) for f in futures)
    assert max(calls) <= 10
    big = batcher.submit(["a"] * 25)  # larger than a batch: scored alone, never split
    assert big.result(10).logits.shape == (25, 2)
    failing = [batcher.submit(["boom"]), batcher.submit(["fine"])]
    time.sleep(0.001)
    errors = [f.exception(10) for f in failing]
    batcher.close()
    assert any(isinstance(e, ValueError) for e in errors)


def test_closing_scores_what_is_queued() -> None:
    batcher = MicroBatcher(fake_scores, wait=0.5, max_batch=1000)
    futures = [batcher.submit(["abc"]) for _ in range(5)]
    batcher.close()
    assert all(f.result(0).logits.shape == (1, 2) for f in futures)


def test_after_closing_a_submission_fails_at_once() -> None:
    batcher = MicroBatcher(fake_scores, wait=0.01, max_batch=10)
    batcher.close()
    batcher.close()  # twice: no second stop, no hang
    late = batcher.submit(["abc"])
    assert "shutting down" in str(late.exception(timeout=1))


def test_a_failure_after_scoring_reaches_the_batch_and_the_thread_lives_on() -> None:
    class Cut(Fake):
        def rows(self, start: int, end: int) -> Fake:
            if "cut" in texts_seen[-1]:
                raise IndexError("cannot cut")
            return super().rows(start, end)

    texts_seen: list[list[str]] = []

    def score(texts: list[str]) -> Fake:
        texts_seen.append(texts)
        return Cut(fake_scores(texts).logits)

    batcher = MicroBatcher(score, wait=0.0, max_batch=10)
    assert isinstance(batcher.submit(["cut"]).exception(timeout=5), IndexError)
    assert batcher.submit(["fine"]).result(timeout=5).logits.shape == (1, 2)
    batcher.close()


def test_batching_off_gives_the_same_answers(client: TestClient, tagger_dir: Path) -> None:
    batched = client.post("/v1/taggers/toy/predict", json={"texts": NAMES}).json()
    with client_for(tagger_dir, batching=False) as plain:
        assert wait_ready(plain)
        assert plain.post("/v1/taggers/toy/predict", json={"texts": NAMES}).json() == batched


def test_a_large_request_is_scored_beside_the_batch_queue(tagger_dir: Path) -> None:
    names = NAMES * 3  # 12 texts: at --alone-from, so not queued for a batch
    with client_for(tagger_dir, alone_from=len(names)) as client:
        assert wait_ready(client)
        large = client.post("/v1/taggers/toy/predict", json={"texts": names}).json()
        counted = client.get("/readyz").json()["batching"]["toy"]
        assert counted["texts"] == 0, counted
        small = client.post("/v1/taggers/toy/predict", json={"texts": NAMES}).json()
        counted = client.get("/readyz").json()["batching"]["toy"]
        assert counted["texts"] == len(NAMES), counted
    assert large["predictions"] == small["predictions"] * 3


# -- files ------------------------------------------------------------------------------------


def test_an_uploaded_file_comes_back_tagged_with_its_fields(
    client: TestClient, tagger_dir: Path
) -> None:
    csv = "id,text,city\n7,故宫博物院,北京\n8,迪士尼乐园,上海\n".encode()
    response = client.post(
        "/v1/taggers/toy/predict-file", files={"file": ("my list.csv", csv, "text/csv")}
    )
    assert response.status_code == 200, response.text
    assert 'filename="my_list.tagged.csv"' in response.headers["content-disposition"]
    lines = response.text.splitlines()
    assert lines[0].startswith("id,text,city,predicted,predicted_name,scores:")
    offline = Tagger.load(tagger_dir).predict(["故宫博物院", "迪士尼乐园"])
    assert lines[1].startswith("7,故宫博物院,北京," + "|".join(offline[0].labels))
    as_jsonl = client.post(
        "/v1/taggers/toy/predict-file",
        files={"file": ("names.csv", csv, "text/csv")},
        data={"output_format": "jsonl"},
    )
    rows = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [r["id"] for r in rows] == ["7", "8"]  # as CSV gives them
    assert rows[1]["predicted"] == offline[1].labels
    assert rows[1]["city"] == "上海"


def test_output_format_is_a_suffix_never_a_path(client: TestClient, tmp_path: Path) -> None:
    target = tmp_path / "outside.csv"
    up = "/".join([".."] * 12)
    for chosen in [f"csv/{up}{target}", "../x.csv", "c sv", "a" * 300 + ".csv"]:
        refused = client.post(
            "/v1/taggers/toy/predict-file",
            files={"file": ("names.csv", "text\n故宫\n".encode(), "text/csv")},
            data={"output_format": chosen},
        )
        assert refused.status_code == 422, chosen
        assert error_of(refused)["field"] == "output_format"
    assert not target.exists()
    dotted = client.post(
        "/v1/taggers/toy/predict-file",
        files={"file": ("names.csv", "text\n故宫\n".encode(), "text/csv")},
        data={"output_format": ".JSONL"},
    )
    assert dotted.status_code == 200
    assert json.loads(dotted.text.splitlines()[0])["text"] == "故宫"


def test_a_long_upload_name_is_shortened(client: TestClient) -> None:
    name = "名" * 90 + ".csv"  # 274 bytes: over what a file name may have
    response = client.post(
        "/v1/taggers/toy/predict-file",
        files={"file": (name, "text\n故宫\n".encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    sent = re.search(r"filename\*=utf-8''([^;]+)", response.headers["content-disposition"])
    assert sent is not None
    from urllib.parse import unquote

    shortened = unquote(sent.group(1))
    assert shortened.startswith("名" * 30) and shortened.endswith(".tagged.csv")
    assert len(shortened.encode()) < 255


def test_a_bad_upload_is_one_line_naming_the_users_file(client: TestClient) -> None:
    bad = client.post(
        "/v1/taggers/toy/predict-file",
        files={"file": ("names.csv", "text,city\n故宫,北京\n,上海\n".encode(), "text/csv")},
    )
    assert bad.status_code == 422
    message = error_of(bad)["message"]
    assert message.startswith("names.csv, row 3, field 'text'")
    assert "/tmp" not in message and "tagger-upload" not in message
    wrong = client.post("/v1/taggers/toy/predict-file", files={"file": ("names.exe", b"MZ", "x/y")})
    assert wrong.status_code == 422
    assert error_of(wrong)["field"] == "file"


def test_an_upload_over_the_limit_is_refused(tagger_dir: Path) -> None:
    with client_for(tagger_dir, max_upload_bytes=4096) as client:
        assert wait_ready(client)
        response = client.post(
            "/v1/taggers/toy/predict-file",
            files={"file": ("big.txt", ("故宫博物院\n" * 1000).encode(), "text/plain")},
        )
    assert response.status_code == 413


def test_review_items_take_the_files_predictions_or_the_taggers(
    client: TestClient, tagger_dir: Path
) -> None:
    predicted = "\n".join(
        json.dumps({"id": i, "text": t, "predicted": ["Villages"]}, ensure_ascii=False)
        for i, t in enumerate(NAMES[:2])
    ).encode()
    items = client.post(
        "/v1/taggers/toy/review-items", files={"file": ("out.jsonl", predicted, "x")}
    ).json()["items"]
    assert [item["labels"] for item in items] == [["Villages"], ["Villages"]]
    assert [item["id"] for item in items] == [0, 1]
    plain = client.post(
        "/v1/taggers/toy/review-items",
        files={"file": ("names.txt", "\n".join(NAMES).encode(), "text/plain")},
    ).json()["items"]
    offline = Tagger.load(tagger_dir).predict(NAMES)
    assert [item["labels"] for item in plain] == [p.labels for p in offline]


# -- corrections ------------------------------------------------------------------------------


def test_corrections_are_appended_in_the_format_training_reads(
    client: TestClient, tmp_path: Path, runner
) -> None:
    first = client.post(
        "/v1/taggers/toy/corrections",
        json={
            "text": "故宫博物院",
            "labels": ["Museums & Galleries"],
            "predicted": ["Others"],
            "reviewer": "li",
            "id": 42,
            "review_id": "r-1",
        },
    )
    assert first.status_code == 201, first.text
    assert first.json() == {"written": True, "row": 1, "file": "reviewed.jsonl"}
    again = client.post(
        "/v1/taggers/toy/corrections",
        json={"text": "故宫博物院", "labels": ["Museums & Galleries"], "review_id": "r-1"},
    )
    assert again.status_code == 200
    assert again.json() == {"written": False, "row": 1, "file": "reviewed.jsonl"}
    client.post("/v1/taggers/toy/corrections", json={"text": "乌镇", "labels": ["Villages"]})
    path = tmp_path / "reviewed.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2
    assert lines[0]["text"] == "故宫博物院" and lines[0]["label"] == ["Museums & Galleries"]
    assert lines[0]["source"] == "review" and lines[0]["reviewer"] == "li"
    assert lines[0]["id"] == 42 and "time" in lines[0]
    records = read_records(path, taxonomy=resolve_taxonomy("attractions"))
    assert [r.labels for r in records] == [("Museums & Galleries",), ("Villages",)]
    assert records[0].metadata["source"] == "review"
    result = runner.invoke(cli, ["validate", str(path), "--taxonomy", "attractions"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ([], "at least 1"),
        (["Others", "Villages"], "never stands beside"),
        (["Villages", "Villages"], "twice"),
        (["Castles"], "unknown label 'Castles'"),
    ],
)
def test_a_correction_that_breaks_the_taxonomy_is_refused(
    client: TestClient, tmp_path: Path, labels: list[str], why: str
) -> None:
    response = client.post("/v1/taggers/toy/corrections", json={"text": "某地", "labels": labels})
    assert response.status_code == 422
    assert why in error_of(response)["message"]
    assert error_of(response)["field"] == "labels"
    assert not (tmp_path / "reviewed.jsonl").exists()


def test_a_correction_that_is_not_text_is_refused(client: TestClient, tmp_path: Path) -> None:
    for body in [
        b'{"text": "a\\ud800b", "labels": ["Villages"]}',
        b'{"text": "wuzhen", "labels": ["Villages"], "reviewer": "\\udfff"}',
    ]:
        refused = client.post(
            "/v1/taggers/toy/corrections",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 422, refused.text
        assert "surrogate" in error_of(refused)["message"]
    assert not (tmp_path / "reviewed.jsonl").exists()


def test_labels_given_by_alias_are_written_as_ids() -> None:
    from tagger_core import Taxonomy

    taxonomy = Taxonomy(
        name="t",
        mode="single-label",
        labels=[{"id": "park", "aliases": ["公园"]}, {"id": "museum"}],
    )
    assert canonical_labels(["公园"], taxonomy) == ["park"]
    assert label_set_problem(["park", "museum"], taxonomy) is not None
    assert label_set_problem(["park"], taxonomy) is None


def test_writes_need_a_token_or_anonymous_review(tagger_dir: Path, tmp_path: Path) -> None:
    body = {"text": "乌镇", "labels": ["Villages"]}
    with client_for(tagger_dir, corrections=tmp_path / "r.jsonl") as client:
        assert wait_ready(client)
        refused = client.post("/v1/taggers/toy/corrections", json=body)
        assert refused.status_code == 403
        assert "--token" in error_of(refused)["message"]
    with client_for(tagger_dir) as client:
        assert wait_ready(client)
        assert client.post("/v1/taggers/toy/corrections", json=body).status_code == 409
    assert not (tmp_path / "r.jsonl").exists()


def test_a_token_guards_every_api_endpoint(tagger_dir: Path, tmp_path: Path) -> None:
    with client_for(tagger_dir, token="s3cret", corrections=tmp_path / "r.jsonl") as client:
        assert client.get("/healthz").status_code == 200  # liveness probes need no secret
        for method, path, body in [
            ("get", "/readyz", None),
            ("get", "/v1/taggers", None),
            ("get", "/v1/taggers/toy", None),
            ("post", "/v1/taggers/toy/predict", {"text": "故宫"}),
            ("post", "/v1/taggers/toy/corrections", {"text": "乌镇", "labels": ["Villages"]}),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                response = client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert error_of(response)["message"].startswith("a bearer token")
        # checked before the body is read: a malformed body without the token is a 401
        broken = client.post(
            "/v1/taggers/toy/corrections",
            content=b'{"text": ',
            headers={"content-type": "application/json"},
        )
        assert broken.status_code == 401
        assert broken.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        deadline = time.monotonic() + 20
        while client.get("/readyz", headers=good).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        written = client.post(
            "/v1/taggers/toy/corrections",
            json={"text": "乌镇", "labels": ["Villages"]},
            headers=good,
        )
        assert written.status_code == 201  # a token allows writes
        for first, status in (("Bearer wrong", 401), ("Bearer s3cret", 200)):
            twice = client.post(  # two Authorization headers: the first counts, as in Starlette
                "/v1/taggers/toy/predict",
                content=json.dumps({"text": "故宫"}).encode(),
                headers=[
                    ("authorization", first),
                    ("authorization", "Bearer s3cret" if status == 401 else "Bearer wrong"),
                    ("content-type", "application/json"),
                ],
            )
            assert twice.status_code == status
    assert len((tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_concurrent_writers_write_each_review_once(tmp_path: Path) -> None:
    path = tmp_path / "reviewed.jsonl"
    logs = [CorrectionLog(path), CorrectionLog(path)]  # as two server processes would

    def write(i: int) -> bool:
        entry = {"text": f"名字{i % 50}", "label": ["Villages"], "review_id": f"id-{i % 50}"}
        return logs[i % 2].append(entry)[0]

    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(write, range(200)))
    assert sum(written) == 50
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["review_id"] for line in lines) == sorted(f"id-{i}" for i in range(50))


def test_a_corrections_file_with_a_cut_line_is_refused(tmp_path: Path, runner, tagger_dir) -> None:
    path = tmp_path / "reviewed.jsonl"
    path.write_text('{"text": "乌镇", "label": ["Villages"]}\n{"text": "故', encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2: ends in an incomplete line"):
        CorrectionLog(path)
    result = runner.invoke(cli, ["serve", str(tagger_dir), "--corrections", str(path)])
    assert "incomplete line" in one_line_error(result)
    assert path.read_text(encoding="utf-8").endswith('"故')  # untouched


# -- the command ------------------------------------------------------------------------------


def test_serve_refuses_what_it_cannot_serve(runner, tmp_path: Path, tagger_dir: Path) -> None:
    missing = runner.invoke(cli, ["serve", str(tmp_path / "nothing")])
    assert "not a tagger folder" in one_line_error(missing)
    empty = runner.invoke(cli, ["serve", str(tmp_path)])
    assert "no tagger here" in one_line_error(empty)
    public = runner.invoke(
        cli, ["serve", str(tagger_dir), "--host", "0.0.0.0", "--allow-anonymous-review"]
    )
    assert "loopback only" in one_line_error(public)


def test_a_loopback_server_answers_only_its_own_host_names(tagger_dir: Path) -> None:
    """A site whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name."""
    from tagger_core.serve.auth import allowed_hosts, host_name

    hosts = allowed_hosts("127.0.0.1", True, ["tagger.internal"])
    assert {"localhost", "127.0.0.1", "::1", "tagger.internal"} == set(hosts)
    assert allowed_hosts("0.0.0.0", False, []) == []  # elsewhere: any, unless named
    assert [host_name(h) for h in ("[::1]:8000", "LocalHost:80", "::1", "a.b")] == [
        "::1",
        "localhost",
        "::1",
        "a.b",
    ]
    app = create_app(ServeSettings(taggers={"toy": tagger_dir}, hosts=hosts))
    for base, status in [
        ("http://127.0.0.1:8000", 200),
        ("http://localhost", 200),
        ("http://[::1]:8000", 200),
        ("http://tagger.internal", 200),
        ("http://rebound.example.com:8000", 400),
    ]:
        with TestClient(app, base_url=base, raise_server_exceptions=False) as client:
            for path in ("/healthz", "/"):
                answer = client.get(path)
                assert answer.status_code == status, (base, path)
            if status == 400:
                assert "rebound.example.com" in error_of(answer)["message"]


def test_a_token_is_what_a_header_can_carry(runner, tagger_dir: Path) -> None:
    from tagger_core.serve.auth import checked_token

    assert checked_token("s3cret\n") == "s3cret"  # a secret file's newline
    for token in ["", "  ", "pässwort", "two words"]:
        with pytest.raises(TaggerError, match="--token"):
            checked_token(token)
    refused = runner.invoke(cli, ["serve", str(tagger_dir)], env={"TAGGER_TOKEN": "pässwort"})
    assert "printable ASCII" in one_line_error(refused)


def test_workers_share_the_cpus_unless_threads_are_given(
    runner, tagger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import tagger_core.cli.serve as serve_cli

    started: list[tuple[int | None, int]] = []
    monkeypatch.setattr(
        serve_cli,
        "run_server",
        lambda settings, sock, workers, *rest: (
            started.append((settings.threads, workers)),
            sock.close(),
        ),
    )
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for extra in (
        [],
        ["--workers", "2"],
        ["--workers", "3"],
        ["--workers", "16"],
        ["--workers", "2", "--threads", "3"],
    ):
        result = runner.invoke(cli, ["serve", str(tagger_dir), "--port", "0", *extra])
        assert result.exit_code == 0, result.output
    # one process keeps the encoder's own default; N processes split the 8 CPUs
    assert started == [(None, 1), (4, 2), (2, 3), (1, 16), (3, 2)]


@pytest.mark.parametrize("module", ["fastapi", "fastapi_offline", "uvicorn", "python_multipart"])
def test_a_missing_serve_extra_is_one_line(
    runner, tagger_dir: Path, monkeypatch, module: str
) -> None:
    import builtins

    real_import = builtins.__import__

    def without(name: str, *args: object, **kwargs: object):
        if name == module:
            raise ImportError(f"No module named '{module}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    result = runner.invoke(cli, ["serve", str(tagger_dir)])
    assert 'pip install "tagger[serve]"' in one_line_error(result)


def test_a_folder_of_taggers_is_served_by_folder_name(tagger_dir: Path) -> None:
    from tagger_core.cli.serve import served_taggers

    assert served_taggers((tagger_dir.parent,)) == {"toy": tagger_dir}
    assert served_taggers((tagger_dir,)) == {"toy": tagger_dir}


def serve_argv(tagger_dir: Path, *options: str) -> list[str]:
    """`tagger serve` on a free port, as a subprocess's command line."""
    return [
        str(Path(sys.executable).parent / "tagger"),
        "serve",
        str(tagger_dir),
        "--port",
        "0",
        *options,
    ]


def start_server(tagger_dir: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """`tagger serve` in a process of its own on a free port, once /readyz answers 200 (a
    worker takes connections only once its taggers are loaded, so one answer is enough)."""
    import httpx

    process = subprocess.Popen(
        serve_argv(tagger_dir, *options),
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    url = re.search(r"on (http://\S+) ", process.stderr.readline()).group(1)  # type: ignore[union-attr]
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_stop_signal_lets_requests_in_flight_finish(tagger_dir: Path) -> None:
    """A request whose body is still arriving when SIGTERM comes is read to its end and
    answered before the process exits."""
    import socket

    process, url = start_server(tagger_dir)
    try:
        host, port = url.removeprefix("http://").split(":")
        body = json.dumps({"texts": NAMES}, ensure_ascii=False).encode()
        with socket.create_connection((host, int(port))) as client:
            client.sendall(
                b"POST /v1/taggers/toy/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert process.poll() is None  # still waiting for this request
            client.sendall(body[10:])
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert len(json.loads(payload)["predictions"]) == len(NAMES)
        assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    finally:
        process.kill()
        process.wait()


def broken_copy(tagger_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the tagger under its own name with one weights file changed."""
    import shutil

    broken = tmp_path / "toy"
    shutil.copytree(tagger_dir, broken)
    victim = next(path for path in (broken / "encoder").rglob("*") if path.is_file())
    victim.write_bytes(b"changed")
    return broken, victim


def test_a_tagger_that_cannot_load_stops_the_server_in_one_line(
    runner, tagger_dir: Path, tmp_path: Path
) -> None:
    broken, victim = broken_copy(tagger_dir, tmp_path)
    result = runner.invoke(cli, ["serve", str(broken), "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and victim.name in last, last


@pytest.mark.slow
def test_workers_load_before_taking_requests_and_a_failed_load_stops_them(
    tagger_dir: Path, tmp_path: Path
) -> None:
    """Each worker loads its taggers before it takes a connection: once one /readyz says
    ready, no request meets a worker still loading (503). A tagger that cannot load stops
    every worker, exit status 2, with the command's one-line error and no traceback."""
    import httpx

    process, url = start_server(tagger_dir, "--workers", "2")
    try:
        answered = set()
        for _ in range(40):  # a new connection each: both workers take some
            answer = httpx.post(f"{url}/v1/taggers/toy/predict", json={"text": "古镇"})
            assert answer.status_code == 200, answer.text
            answered.add(httpx.get(f"{url}/readyz").json()["pid"])
        assert process.pid not in answered and len(answered) <= 2
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)

    broken, victim = broken_copy(tagger_dir, tmp_path)
    failed = subprocess.run(
        serve_argv(broken, "--workers", "2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 2, failed.stderr
    assert "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("Error: ")]
    assert errors and all(victim.name in line for line in errors), failed.stderr


def test_cors_is_off_unless_an_origin_is_named(tagger_dir: Path) -> None:
    preflight = {
        "Origin": "https://cms.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    with client_for(tagger_dir) as closed:
        answer = closed.options("/v1/taggers/toy/predict", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
    with client_for(tagger_dir, cors_origins=["https://cms.example.com"]) as open_:
        answer = open_.options("/v1/taggers/toy/predict", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://cms.example.com"
        assert wait_ready(open_)
        posted = open_.post(
            "/v1/taggers/toy/predict",
            json={"text": "故宫"},
            headers={"Origin": "https://cms.example.com"},
        )
        assert posted.status_code == 200
        assert posted.headers["access-control-allow-origin"] == "https://cms.example.com"
    with client_for(
        tagger_dir, cors_origins=["https://cms.example.com"], token="s3cret", max_body_bytes=2048
    ) as guarded:
        answer = guarded.options("/v1/taggers/toy/predict", headers=preflight)
        assert answer.status_code == 200  # a preflight carries no token
        origin = {"Origin": "https://cms.example.com"}
        unauthorised = guarded.post(
            "/v1/taggers/toy/predict", json={"text": "故宫"}, headers=origin
        )
        too_large = guarded.post(
            "/v1/taggers/toy/predict",
            json={"texts": ["故宫博物院"] * 400},
            headers={**origin, "Authorization": "Bearer s3cret"},
        )
        for refused, status in ((unauthorised, 401), (too_large, 413)):
            assert refused.status_code == status  # and the browser may read why
            assert refused.headers["access-control-allow-origin"] == "https://cms.example.com"


@pytest.mark.slow
def test_two_worker_processes_write_each_review_once(tagger_dir: Path, tmp_path: Path) -> None:
    import httpx

    corrections = tmp_path / "reviewed.jsonl"
    process, url = start_server(
        tagger_dir,
        "--workers",
        "2",
        "--corrections",
        str(corrections),
        "--allow-anonymous-review",
    )
    try:

        def send(i: int) -> int:
            body = {"text": f"名字{i % 10}", "labels": ["Villages"], "review_id": f"w-{i % 10}"}
            with httpx.Client() as client:  # a new connection each: both workers take some
                return client.post(f"{url}/v1/taggers/toy/corrections", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, range(60)))
        assert statuses.count(201) == 10 and statuses.count(200) == 50
        lines = corrections.read_text(encoding="utf-8").splitlines()
        assert sorted(json.loads(line)["review_id"] for line in lines) == sorted(
            f"w-{i}" for i in range(10)
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
