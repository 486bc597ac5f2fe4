"""`make demo`: the embedded default end to end, driven with ravenctl.

Starts a local nats-server, both services on SQLite and one CPU worker; generates a small waste-detection-like
dataset; trains the light template with a live progress bar; publishes the model (it becomes the family's
champion); fine-tunes a second run from it; compares both models on their evaluations of the same dataset
version test split, writes one HTML evaluation report per model, and publishes the fine-tuned model through
the champion gate (the decision with both numbers; a refusal is shown, and what ``--force`` would do). Prints
the lineage, where the curves PNG and the reports are, and a summary of the numbers. Stops everything it
started, also on Ctrl-C. Tunables: RAVEN_DEMO_* (see DEFAULTS) and RAVEN_DATA_DIR.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.stack import ROOT, Stack
from tests.fixtures.synthetic_coco import make_dataset

DATASET = "waste-demo"
TEMPLATE = "rtmdet_tiny"
# The first run uses the rtmdet_tiny template's defaults (30 epochs, batch 8, 160 px input, lr 0.004,
# validation every 5 epochs), tuned on 2 CPU cores so a detector from random init reaches val bbox mAP >= 0.5
# on this data.
DEFAULTS = {
    "RAVEN_DEMO_IMAGES": "60",
    "RAVEN_DEMO_IMAGE_SIZE": "256",
    "RAVEN_DEMO_EPOCHS": "",
    "RAVEN_DEMO_FINETUNE_EPOCHS": "6",
    # Fine-tuning starts from a trained model: a quarter of the template's learning rate keeps its skill.
    "RAVEN_DEMO_FINETUNE_LR": "0.001",
    # 1: when the champion gate refuses the fine-tuned model, publish it anyway with --force (a superadmin
    # token; recorded as FORCED). Off by default: the demo shows the refusal and what --force would do.
    "RAVEN_DEMO_FORCE_PUBLISH": "0",
}


def setting(name: str) -> str:
    return os.environ.get(name, DEFAULTS[name])


def ravenctl(
    stack: Stack, *args: str, json_output: bool = False, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = stack.env()
    output = ["--output", "json"] if json_output else []
    command = [str(Path(sys.executable).parent / "ravenctl"), *output, *args]
    stdout = subprocess.PIPE if json_output else None
    result = subprocess.run(command, env=env, cwd=ROOT, text=True, stdout=stdout)
    if check and result.returncode != 0:
        raise SystemExit(f"demo: `ravenctl {' '.join(args)}` exited with {result.returncode}")
    return result


def ravenctl_json(stack: Stack, *args: str) -> dict:
    return json.loads(ravenctl(stack, *args, json_output=True).stdout)


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def train(stack: Stack, name: str, epochs: str, base_model: str = "", lr: str = "") -> dict:
    args = ["runs", "create", "--name", name, "--dataset", DATASET, "--template", TEMPLATE, "--seed", "7"]
    if epochs:
        args += ["--epochs", epochs, "--val-interval", "2"]
    if base_model:
        args += ["--base-model", base_model]
    if lr:
        args += ["--lr", lr]
    run = ravenctl_json(stack, *args)
    print(f"created {run['name']} ({run['display_name']}), state {run['state']}")
    ravenctl(stack, "runs", "watch", run["name"])  # live progress bar; exits non-zero unless SUCCEEDED
    return ravenctl_json(stack, "runs", "get", run["name"])


def main() -> int:
    started = time.monotonic()
    data_dir = Path(os.environ.get("RAVEN_DATA_DIR", ROOT / "var" / "demo")).resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    banner(f"generating a synthetic waste dataset ({setting('RAVEN_DEMO_IMAGES')} images) under {data_dir}")
    make_dataset(
        data_dir / "datasets" / DATASET,
        n_images=int(setting("RAVEN_DEMO_IMAGES")),
        size=int(setting("RAVEN_DEMO_IMAGE_SIZE")),
        seed=3,
    )
    banner("starting nats-server, training_run, trained_model and one CPU worker")
    try:
        with Stack(data_dir) as stack:
            print(f"logs: {data_dir / 'logs'}")
            banner(f"run 1: {TEMPLATE} from random init")
            first = train(stack, "demo-waste-detector", setting("RAVEN_DEMO_EPOCHS"))
            model = first["trained_model"]
            val_map = ravenctl_json(stack, "models", "get", model)["evaluation"]["val"]["bbox_map"]
            print(f"{model}: val bbox mAP {val_map:.3f}")
            banner(f"publishing {model}")
            ravenctl(stack, "models", "publish", model)
            banner(f"run 2: fine-tune from {model}")
            # The same display name: the fine-tuned model is v2 of the family whose champion is v1, so the
            # publish gate below compares the two.
            second = train(
                stack,
                "demo-waste-detector",
                setting("RAVEN_DEMO_FINETUNE_EPOCHS"),
                base_model=model,
                lr=setting("RAVEN_DEMO_FINETUNE_LR"),
            )
            candidate = second["trained_model"]
            banner("both models on the same test split (their evaluations)")
            ravenctl(stack, "models", "compare", model, candidate)
            compared = ravenctl_json(stack, "models", "compare", model, candidate)
            banner("evaluation reports (HTML)")
            reports = [report(stack, name, data_dir) for name in (model, candidate)]
            banner(f"gated publish of the fine-tuned model {candidate}")
            gate = gated_publish(stack, candidate)
            banner("lineage")
            ravenctl(stack, "models", "lineage", candidate)
            curves = data_dir / "curves.png"
            ravenctl(stack, "models", "plot", model, "--out", str(curves))
            print(f"training curves: {curves}")
            summary(compared, reports, gate, curves)
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything it started has been stopped")
        return 130
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s")
    return 0


def report(stack: Stack, name: str, data_dir: Path) -> Path:
    """One self-contained HTML evaluation report of the model's test split (``ravenctl models report``)."""
    path = data_dir / f"report-{name.rsplit('/', 1)[-1]}.html"
    ravenctl(stack, "models", "report", name, "--out", str(path))
    return path


def gated_publish(stack: Stack, candidate: str) -> dict:
    """Publishes through the champion gate. A refusal (FAILED_PRECONDITION, exit 2) is shown as such, with
    what --force would do; it is forced only with RAVEN_DEMO_FORCE_PUBLISH=1."""
    published = ravenctl(stack, "models", "publish", candidate, check=False).returncode == 0
    forced = False
    if not published:
        print(
            "the gate refused: the fine-tuned model's test bbox mAP is lower than the champion's by more "
            "than the tolerance on the same images (above: both numbers). It stays unpublished and the "
            "champion keeps its alias.\n"
            f"`ravenctl --token <superadmin token> models publish {candidate} --force` would publish it "
            "anyway, move the champion alias to it and record the decision as FORCED with both numbers "
            "(set RAVEN_DEMO_FORCE_PUBLISH=1 to have the demo do it)."
        )
        if setting("RAVEN_DEMO_FORCE_PUBLISH") == "1":
            admin = ravenctl_json(stack, "token", "--superadmin")["token"]
            print("RAVEN_DEMO_FORCE_PUBLISH=1: forcing it with a superadmin token")
            ravenctl(stack, "--token", admin, "models", "publish", candidate, "--force")
            published = forced = True
    found = ravenctl_json(stack, "models", "get", candidate)
    return {
        "model": candidate,
        "published": published,
        "forced": forced,
        "aliases": found.get("aliases", []),
        "decision": found.get("publish_decision", {}),
    }


def summary(compared: dict, reports: list[Path], gate: dict, curves: Path) -> None:
    banner("summary")
    print(f"compared on {compared['compared_on']} (same split: {compared['same_split']})")
    for entry, path in zip(compared["models"], reports, strict=True):
        bbox_map = entry["metrics"].get("bbox_map", 0.0)
        label = f"{entry['name']} ({entry['display_name']} v{entry['version']})"
        print(f"  {label}: test bbox mAP {bbox_map:.4f}")
        print(f"    report: {path}")
    decision = gate["decision"]
    outcome = decision.get("outcome", "").removeprefix("OUTCOME_")
    if gate["published"] and outcome in ("NO_CHAMPION", "NOT_COMPARABLE"):
        print(f"gate: {outcome}: {decision.get('message', '')}")
    elif gate["published"]:
        candidate_map = decision.get("candidate_bbox_map", 0.0)
        print(
            f"gate: {outcome}: {gate['model']} test bbox mAP {candidate_map:.4f} vs "
            f"champion {decision.get('champion', '')} {decision.get('champion_bbox_map', 0.0):.4f} "
            f"(tolerance {decision.get('tolerance', 0.0):g}); champion now: "
            f"{gate['model'] if 'champion' in gate['aliases'] else 'unchanged'}"
        )
    else:
        print(f"gate: REFUSED: {gate['model']} stays unpublished; the champion keeps its alias")
    print(f"training curves: {curves}")


if __name__ == "__main__":
    sys.exit(main())
