"""A data scientist's everyday MLflow workflow, run with the real `mlflow` client (mlflow-skinny)
against `quire serve registry`. Every value written is read back and asserted.

Usage: MLFLOW_TRACKING_URI=http://127.0.0.1:PORT python mlflow_workflow.py WORKDIR
Prints `workflow: N passed, 0 failed` when every check passed; exits non-zero on the first
failure, naming it.
"""

import hashlib
import json
import math
import os
import pathlib
import sys
import time

import mlflow
import mlflow.pyfunc
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

# Fail fast instead of retrying for minutes if the server ever answers 5xx.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

CHECKS = 0


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[float]) -> list[float]:
        return [2 * x for x in model_input]


def check(what, got, want):
    global CHECKS
    if got != want:
        sys.exit(f"workflow: FAILED {what}: got {got!r}, want {want!r}")
    CHECKS += 1


def expect_error(what, code, fn):
    global CHECKS
    try:
        fn()
    except MlflowException as e:
        if e.error_code != code:
            sys.exit(f"workflow: FAILED {what}: error code {e.error_code}, want {code} ({e})")
        CHECKS += 1
        return
    sys.exit(f"workflow: FAILED {what}: no error, want {code}")


def main(workdir):
    work = pathlib.Path(workdir)
    client = MlflowClient()

    # ---- experiment ----
    exp_id = mlflow.create_experiment("bookstore-ranking", tags={"team": "search"})
    check("experiment id is a string", isinstance(exp_id, str), True)
    exp = mlflow.set_experiment("bookstore-ranking")
    check("set_experiment finds it by name", exp.experiment_id, exp_id)
    check("experiment tag", exp.tags.get("team"), "search")
    check("experiment artifact location", exp.artifact_location, f"mlflow-artifacts:/{exp_id}")
    check("get_experiment", client.get_experiment(exp_id).name, "bookstore-ranking")
    found = client.search_experiments(filter_string="name = 'bookstore-ranking'")
    check("search_experiments by name", [e.experiment_id for e in found], [exp_id])
    expect_error(
        "duplicate experiment",
        "RESOURCE_ALREADY_EXISTS",
        lambda: mlflow.create_experiment("bookstore-ranking"),
    )

    # ---- a run with params, metrics over steps, tags and artifacts ----
    (work / "notes.txt").write_text("lambdarank on 29 features\n")
    model_dir = work / "model"
    (model_dir / "data").mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors:\n  quire:\n    format: lightgbm\n")
    (model_dir / "data" / "model.txt").write_text("tree\nnum_leaves=31\n")
    with mlflow.start_run(run_name="ltr-baseline") as run:
        run_id = run.info.run_id
        check("run artifact uri", run.info.artifact_uri,
              f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts")
        mlflow.log_params({"objective": "lambdarank", "num_leaves": 31})
        mlflow.log_param("learning_rate", 0.05)
        for step, ndcg in enumerate([0.61, 0.66, 0.70, 0.72]):
            mlflow.log_metric("ndcg_5", ndcg, step=step)
        mlflow.log_metrics({"auc": 0.81, "loss": 0.42}, step=3)
        # A diverged training logs NaN and infinities: stored as logged, as MLflow's servers do.
        mlflow.log_metrics({"diverged": float("nan"), "grad_norm": float("inf")}, step=3)
        mlflow.set_tags({"stage": "baseline", "owner": "ds-team"})
        mlflow.set_tag("mlflow.note.content", "first try")
        mlflow.log_artifact(str(work / "notes.txt"))
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        # Params are immutable: the same value again is fine, another is refused.
        mlflow.log_param("objective", "lambdarank")
        expect_error("changing a param", "INVALID_PARAMETER_VALUE",
                     lambda: mlflow.log_param("objective", "regression"))

    got = client.get_run(run_id)
    check("run status", got.info.status, "FINISHED")
    check("run name", got.info.run_name, "ltr-baseline")
    check("run end time set", got.info.end_time is not None and got.info.end_time >= got.info.start_time, True)
    check("run experiment", got.info.experiment_id, exp_id)
    check("params", got.data.params,
          {"objective": "lambdarank", "num_leaves": "31", "learning_rate": "0.05"})
    check("latest metrics", {k: got.data.metrics[k] for k in ["ndcg_5", "auc", "loss", "grad_norm"]},
          {"ndcg_5": 0.72, "auc": 0.81, "loss": 0.42, "grad_norm": float("inf")})
    check("NaN metric", math.isnan(got.data.metrics["diverged"]), True)
    check("tags", {k: got.data.tags.get(k) for k in ["stage", "owner", "mlflow.note.content"]},
          {"stage": "baseline", "owner": "ds-team", "mlflow.note.content": "first try"})
    check("client tags arrive", "mlflow.user" in got.data.tags and "mlflow.source.name" in got.data.tags, True)

    history = client.get_metric_history(run_id, "ndcg_5")
    check("metric history", [(m.step, m.value) for m in history],
          [(0, 0.61), (1, 0.66), (2, 0.70), (3, 0.72)])

    # ---- artifacts: listing and download ----
    top = client.list_artifacts(run_id)
    check("top-level artifacts", [(f.path, f.is_dir) for f in top],
          [("model", True), ("notes.txt", False)])
    check("file size", [f.file_size for f in top if not f.is_dir], [len("lambdarank on 29 features\n")])
    inner = client.list_artifacts(run_id, "model")
    check("folder listing", [(f.path, f.is_dir) for f in inner],
          [("model/MLmodel", False), ("model/data", True)])
    down = pathlib.Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model",
                                                           dst_path=str(work / "down")))
    check("downloaded MLmodel", (down / "MLmodel").read_text(), (model_dir / "MLmodel").read_text())
    check("downloaded nested file", (down / "data" / "model.txt").read_text(), "tree\nnum_leaves=31\n")
    notes = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="notes.txt",
                                                dst_path=str(work / "down2"))
    check("downloaded file", pathlib.Path(notes).read_text(), "lambdarank on 29 features\n")

    # ---- more runs, then search with filter, order and pages ----
    for i, (ndcg, objective) in enumerate([(0.55, "regression"), (0.78, "lambdarank"), (0.74, "lambdarank")]):
        with mlflow.start_run(run_name=f"sweep-{i}"):
            mlflow.log_param("objective", objective)
            mlflow.log_metric("ndcg_5", ndcg)
            mlflow.set_tag("stage", "sweep")
            time.sleep(0.01)
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string="metrics.ndcg_5 > 0.7 AND params.objective = 'lambdarank'",
        order_by=["metrics.ndcg_5 DESC"],
        output_format="list",
    )
    check("search filter and order", [(r.info.run_name, r.data.metrics["ndcg_5"]) for r in runs],
          [("sweep-1", 0.78), ("sweep-2", 0.74), ("ltr-baseline", 0.72)])
    tagged = client.search_runs([exp_id], filter_string="tags.stage = 'sweep'", order_by=["attributes.run_name ASC"])
    check("search by tag", [r.info.run_name for r in tagged], ["sweep-0", "sweep-1", "sweep-2"])
    page1 = client.search_runs([exp_id], max_results=3, order_by=["attributes.start_time ASC"])
    check("first page is full", len(page1), 3)
    check("first page has a token", bool(page1.token), True)
    page2 = client.search_runs([exp_id], max_results=3, order_by=["attributes.start_time ASC"],
                               page_token=page1.token)
    check("last page", [r.info.run_name for r in page2], ["sweep-2"])
    check("no token on the last page", page2.token, None)
    expect_error("bad filter", "INVALID_PARAMETER_VALUE",
                 lambda: client.search_runs([exp_id], filter_string="metrics.ndcg_5 >>> 1"))

    # ---- registry: register_model from a runs:/ URI ----
    mv1 = mlflow.register_model(f"runs:/{run_id}/model", "ltr")
    check("registered version", mv1.version, "1")
    check("registered version status", mv1.status, "READY")
    check("registered source", mv1.source, f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts/model")
    check("registered run id", mv1.run_id, run_id)
    # A file a registered version holds keeps its bytes (its downloads are checked against the
    # version's digests); the run's other files can still be replaced.
    tampered = work / "tampered"
    tampered.mkdir(exist_ok=True)
    (tampered / "MLmodel").write_text("tampered\n")
    try:
        client.log_artifact(run_id, str(tampered / "MLmodel"), artifact_path="model")
        sys.exit("workflow: FAILED replacing a registered version's file: no error")
    except Exception as e:  # the artifact proxy's 400 (raised by requests or by mlflow)
        check("replacing a registered version's file is refused", "cannot be replaced" in str(e)
              or "400" in str(e), True)
    # The registered file's bytes under another path are that path's own: replaceable.
    for text in [(model_dir / "MLmodel").read_text(), "draft\n", "final\n"]:
        (tampered / "scratch.txt").write_text(text)
        client.log_artifact(run_id, str(tampered / "scratch.txt"), artifact_path="scratch")
    scratch = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="scratch/scratch.txt",
                                                  dst_path=str(work / "scratch"))
    check("a run's other file is replaced", pathlib.Path(scratch).read_text(), "final\n")

    # ---- create_registered_model + create_model_version ----
    client.create_registered_model("recs-als", tags={"kind": "cf"}, description="ALS recommendations")
    expect_error("duplicate registered model", "RESOURCE_ALREADY_EXISTS",
                 lambda: client.create_registered_model("recs-als"))
    src = f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts/model"
    v1 = client.create_model_version("recs-als", src, run_id=run_id, tags={"dataset": "2026-11"})
    v2 = client.create_model_version("recs-als", src, run_id=run_id, description="refit")
    check("version numbers", (v1.version, v2.version), ("1", "2"))
    check("version tags at creation", v1.tags, {"dataset": "2026-11"})
    check("version description", client.get_model_version("recs-als", "2").description, "refit")
    rm = client.get_registered_model("recs-als")
    check("registered model description", rm.description, "ALS recommendations")
    check("registered model tags", rm.tags, {"kind": "cf"})
    check("latest version", [v.version for v in rm.latest_versions], ["2"])

    # ---- aliases ----
    client.set_registered_model_alias("recs-als", "production", "1")
    check("alias resolves", client.get_model_version_by_alias("recs-als", "production").version, "1")
    client.set_registered_model_alias("recs-als", "production", "2")
    by_alias = client.get_model_version_by_alias("recs-als", "production")
    check("alias moved", (by_alias.version, by_alias.aliases), ("2", ["production"]))
    check("aliases on the model", client.get_registered_model("recs-als").aliases, {"production": "2"})
    client.set_registered_model_alias("recs-als", "staging", "1")
    client.delete_registered_model_alias("recs-als", "staging")
    expect_error("deleted alias", "RESOURCE_DOES_NOT_EXIST",
                 lambda: client.get_model_version_by_alias("recs-als", "staging"))
    expect_error("reserved alias", "INVALID_PARAMETER_VALUE",
                 lambda: client.set_registered_model_alias("recs-als", "latest", "1"))

    # ---- version tags and version search ----
    client.set_model_version_tag("recs-als", "2", "validated", "yes")
    check("version tag", client.get_model_version("recs-als", "2").tags,
          {"validated": "yes"})
    client.delete_model_version_tag("recs-als", "2", "validated")
    check("version tag deleted", client.get_model_version("recs-als", "2").tags, {})
    versions = client.search_model_versions("name = 'recs-als'")
    check("search versions", sorted(v.version for v in versions), ["1", "2"])
    by_run = client.search_model_versions(f"run_id = '{run_id}'")
    check("search versions by run", sorted((v.name, v.version) for v in by_run),
          [("ltr", "1"), ("recs-als", "1"), ("recs-als", "2")])
    models = client.search_registered_models(filter_string="name LIKE 'recs%'")
    check("search registered models", [m.name for m in models], ["recs-als"])

    # ---- download a model version's files through models:/ URIs ----
    got_dir = pathlib.Path(mlflow.artifacts.download_artifacts("models:/recs-als@production",
                                                               dst_path=str(work / "mv")))
    check("models:/ alias download", (got_dir / "data" / "model.txt").read_text(), "tree\nnum_leaves=31\n")
    got_dir = pathlib.Path(mlflow.artifacts.download_artifacts("models:/ltr/1", dst_path=str(work / "mv1")))
    check("models:/ version download", (got_dir / "MLmodel").read_text(), (model_dir / "MLmodel").read_text())

    # ---- logged models (MLflow 3) ----
    with mlflow.start_run(run_name="with-logged-model") as run2:
        lm = mlflow.initialize_logged_model(name="ranker", model_type="lightgbm",
                                            tags={"framework": "lightgbm"}, params={"num_leaves": "31"})
        check("logged model id", lm.model_id.startswith("m-"), True)
        check("logged model location", lm.artifact_location,
              f"mlflow-artifacts:/{exp_id}/models/{lm.model_id}/artifacts")
        client.log_model_artifacts(lm.model_id, str(model_dir))
        client.finalize_logged_model(lm.model_id, "READY")
        client.set_logged_model_tags(lm.model_id, {"validated": "yes"})
    got_lm = client.get_logged_model(lm.model_id)
    check("logged model status", str(got_lm.status), "READY")
    check("logged model tags", {k: got_lm.tags[k] for k in ["framework", "validated"]},
          {"framework": "lightgbm", "validated": "yes"})
    check("logged model params", got_lm.params, {"num_leaves": "31"})
    check("logged model run", got_lm.source_run_id, run2.info.run_id)
    found = client.search_logged_models(experiment_ids=[exp_id], filter_string="name = 'ranker'")
    check("search logged models", [m.model_id for m in found], [lm.model_id])
    check("search logged models, none", list(client.search_logged_models(
        experiment_ids=[exp_id], filter_string="name = 'nope'")), [])
    mv = mlflow.register_model(f"models:/{lm.model_id}", "ranker")
    check("version from a logged model", (mv.version, mv.source), ("1", f"models:/{lm.model_id}"))
    lm_dir = pathlib.Path(mlflow.artifacts.download_artifacts("models:/ranker/1", dst_path=str(work / "lm")))
    check("logged model download", (lm_dir / "MLmodel").read_text(), (model_dir / "MLmodel").read_text())

    # ---- a flavor's log_model (MLflow 3: a logged model plus the run's outputs) ----
    with mlflow.start_run(run_name="pyfunc") as run3:
        info = mlflow.pyfunc.log_model(name="doubler", python_model=Doubler())
    check("log_model gives a logged model", info.model_id.startswith("m-"), True)
    outputs = client.get_run(run3.info.run_id).outputs
    check("run outputs", [o.model_id for o in outputs.model_outputs], [info.model_id])
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    check("logged model predicts", list(loaded.predict([1.0, 2.5])), [2.0, 5.0])
    flavored = mlflow.register_model(f"runs:/{run3.info.run_id}/doubler", "doubler")
    check("runs:/ URI of a logged model", flavored.source, f"models:/{info.model_id}")
    again = mlflow.pyfunc.load_model("models:/doubler/1")
    check("registered flavor predicts", list(again.predict([3.0])), [6.0])

    # ---- Quire's extras, over plain HTTP ----
    base = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
    raw = requests.get(f"{base}/api/2.0/mlflow/model-versions/get",
                       params={"name": "ranker", "version": "1"}, timeout=30).json()["model_version"]
    check("version links its logged model", raw["model_id"], lm.model_id)
    files = {a["name"]: a for a in raw["quire_artifacts"]}
    check("version records its files", sorted(files), ["MLmodel", "data/model.txt"])
    check("file digest", files["MLmodel"]["sha256"],
          hashlib.sha256((model_dir / "MLmodel").read_bytes()).hexdigest())
    one = requests.get(f"{base}/api/2.0/quire/model-versions/artifact",
                       params={"name": "ranker", "version": "1", "artifact": "data/model.txt"}, timeout=30)
    check("named artifact download", (one.status_code, one.text), (200, "tree\nnum_leaves=31\n"))
    moves = requests.get(f"{base}/api/2.0/quire/registered-models/alias-history",
                         params={"name": "recs-als", "alias": "production"}, timeout=30).json()["moves"]
    check("alias history", [(m.get("from_version"), m.get("to_version")) for m in moves],
          [(None, "1"), ("1", "2")])
    err = requests.get(f"{base}/api/2.0/mlflow/no-such-endpoint", timeout=30)
    check("unknown endpoint", (err.status_code, err.json()["error_code"]), (404, "ENDPOINT_NOT_FOUND"))

    # ---- errors for missing objects ----
    missing = "0" * 32
    expect_error("missing run", "RESOURCE_DOES_NOT_EXIST", lambda: client.get_run(missing))
    expect_error("missing experiment", "RESOURCE_DOES_NOT_EXIST", lambda: client.get_experiment("424242"))
    check("missing experiment by name", mlflow.get_experiment_by_name("nope"), None)
    expect_error("missing registered model", "RESOURCE_DOES_NOT_EXIST",
                 lambda: client.get_registered_model("nope"))
    expect_error("missing version", "RESOURCE_DOES_NOT_EXIST",
                 lambda: client.get_model_version("recs-als", "99"))
    expect_error("missing logged model", "RESOURCE_DOES_NOT_EXIST",
                 lambda: client.get_logged_model("m-" + missing))
    expect_error("metric on a missing run", "RESOURCE_DOES_NOT_EXIST",
                 lambda: client.log_metric(missing, "x", 1.0))

    print(json.dumps({"experiment_id": exp_id, "run_id": run_id}))
    print(f"workflow: {CHECKS} passed, 0 failed")


if __name__ == "__main__":
    main(sys.argv[1])
