"""`make demo`: the embedded default end to end, driven with ravenctl.

Starts a local nats-server, both services on SQLite and one CPU worker; generates a small waste-detection-like
dataset; trains the light template with a live progress bar; publishes the model; fine-tunes a second run from
it; prints both models with their mAP, the lineage and where the curves PNG is. Stops everything it started,
also on Ctrl-C. Tunables: RAVEN_DEMO_* (see DEFAULTS) and RAVEN_DATA_DIR.
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
            second = train(
                stack,
                "demo-waste-detector-ft",
                setting("RAVEN_DEMO_FINETUNE_EPOCHS"),
                base_model=model,
                lr=setting("RAVEN_DEMO_FINETUNE_LR"),
            )
            banner("both models")
            ravenctl(stack, "models", "compare", model, second["trained_model"])
            banner("lineage")
            ravenctl(stack, "models", "lineage", second["trained_model"])
            curves = data_dir / "curves.png"
            ravenctl(stack, "models", "plot", model, "--out", str(curves))
            banner(f"training curves: {curves}")
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything it started has been stopped")
        return 130
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
