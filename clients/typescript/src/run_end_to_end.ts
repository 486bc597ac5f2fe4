/**
 * Drives one training run end to end from Node.js: lists the model templates, shows how a rejected request
 * reads, creates a run, watches it to its terminal event (resuming the stream when it drops), and gets the
 * trained model. Prints one JSON object per step on stdout.
 *
 *   RAVEN_TOKEN=$(ravenctl token --all) node dist/run_end_to_end.js --dataset waste/v1 [--template rtmdet_tiny]
 *       [--epochs 1] [--display-name "..."] [--disconnect-after N]
 *
 * RAVEN_TRAINING_RUN_ADDR / RAVEN_TRAINED_MODEL_ADDR: the two services (default 127.0.0.1:50051 / :50052).
 * Exit status: 0 when the run SUCCEEDED, 2 when it ended otherwise, 1 on an error.
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

import { RavenClient, RavenError, TrainedModel } from "./raven_client";

function print(step: string, fields: object = {}): void {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

/** COCO writes -1 where a metric could not be measured (no ground truth of that kind): not a score. */
function metric(value: number | undefined): number | null {
  return value === undefined || value < 0 ? null : value;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      dataset: { type: "string" },
      template: { type: "string", default: "rtmdet_tiny" },
      epochs: { type: "string", default: "1" },
      "display-name": { type: "string", default: "typescript client run" },
      "disconnect-after": { type: "string", default: "0" },
    },
  });
  const token = process.env.RAVEN_TOKEN;
  if (!token || !values.dataset) {
    process.stderr.write("set RAVEN_TOKEN and pass --dataset (see the comment at the top of this file)\n");
    return 1;
  }
  const client = new RavenClient(
    process.env.RAVEN_TRAINING_RUN_ADDR ?? "127.0.0.1:50051",
    process.env.RAVEN_TRAINED_MODEL_ADDR ?? "127.0.0.1:50052",
    token,
  );
  try {
    const templates = await client.listModelTemplates();
    const ids = templates.model_templates.map((t) => t.template_id);
    print("templates", { template_ids: ids });

    const spec = {
      display_name: values["display-name"],
      dataset: values.dataset,
      model_template: values.template,
      hyperparameters: { epochs: Number(values.epochs) },
    };
    // validate_only checks a request without creating anything; a bad one lists every offending field.
    try {
      await client.createTrainingRun({ ...spec, display_name: "" }, "", true);
    } catch (error) {
      if (!(error instanceof RavenError)) throw error;
      print("rejected", { code: error.code, field_violations: error.fieldViolations });
    }

    // request_id makes the create safe to retry: the same id from the same owner returns the same run.
    const created = await client.createTrainingRun(spec, randomUUID());
    print("created", { name: created.name, state: created.state });
    const got = await client.getTrainingRun(created.name);
    print("got", { name: got.name, state: got.state, owner: got.owner, model_template: got.model_template });

    const watch = client.watchTrainingRun(created.name, {
      disconnectAfter: Number(values["disconnect-after"]),
      onResume: (resumeToken, reason) => print("resumed", { resume_token: resumeToken, reason }),
    });
    for await (const response of watch) {
      const { event, training_run: run } = response;
      print("event", {
        kind: event.payload,
        sequence: event.sequence,
        resume_token: response.resume_token,
        to_state: event.state_changed?.to_state,
        phase: event.phase_changed?.phase,
        run_state: run?.state,
      });
    }

    const finished = await client.getTrainingRun(created.name);
    print("finished", { state: finished.state, trained_model: finished.trained_model, failure: finished.failure });
    if (finished.state !== "SUCCEEDED") {
      return 2;
    }
    const model: TrainedModel = await client.getTrainedModel(finished.trained_model);
    print("model", {
      name: model.name,
      display_name: model.display_name,
      version: model.version,
      training_run: model.training_run,
      val_bbox_map: metric(model.evaluation?.val?.bbox_map),
    });
    return 0;
  } finally {
    client.close();
  }
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
