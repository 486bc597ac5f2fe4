/**
 * A small Raven client for Node.js, built on @grpc/grpc-js and @grpc/proto-loader.
 *
 * It loads the .proto files of protos/ at run time, so nothing is generated: the messages are plain objects with
 * the field names of the .proto files (`display_name`), enum values as their names (`"SUCCEEDED"`), 64-bit
 * integers as decimal strings, and `payload` naming the field set in a oneof. The error details in a status
 * (`google.rpc.BadRequest`) are decoded with the vendored protos/google/rpc files.
 *
 * The contracts it follows are the comments of protos/raven/v1/*.proto and docs/tokens.md.
 */
import * as path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as protobuf from "protobufjs";

/** protos/ of this repository; set RAVEN_PROTOS_DIR when the program runs from elsewhere. */
export const PROTOS_DIR = process.env.RAVEN_PROTOS_DIR ?? path.resolve(__dirname, "..", "..", "..", "protos");

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTOS_DIR],
};

export type RunState =
  | "RUN_STATE_UNSPECIFIED"
  | "PENDING"
  | "RUNNING"
  | "SUCCEEDED"
  | "FAILED"
  | "CANCELLING"
  | "CANCELLED";

export const TERMINAL_STATES: ReadonlySet<RunState> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export interface ProgressSnapshot {
  phase: string;
  epoch: number;
  max_epochs: number;
  iter: string;
  max_iters: string;
}

export interface TrainingRun {
  name: string;
  display_name: string;
  dataset: string;
  model_template: string;
  state: RunState;
  attempt: number;
  owner: string;
  trained_model: string;
  progress: ProgressSnapshot | null;
  failure: { kind: string; message: string } | null;
}

export interface RunEvent {
  run_id: string;
  attempt: number;
  sequence: string;
  payload: string; // which field of the oneof is set: "progress", "state_changed", ...
  state_changed?: { from_state: RunState; to_state: RunState; reason: string } | null;
  phase_changed?: { phase: string } | null;
  progress?: { progress: ProgressSnapshot | null } | null;
}

export interface WatchTrainingRunResponse {
  event: RunEvent;
  resume_token: string;
  training_run: TrainingRun;
}

export interface ModelTemplate {
  name: string;
  template_id: string;
  description: string;
}

export interface TrainedModel {
  name: string;
  display_name: string;
  version: number;
  training_run: string;
  published: boolean;
  evaluation: { val: { bbox_map: number; bbox_map_50: number } | null } | null;
}

export interface FieldViolation {
  field: string;
  description: string;
}

/** A failed call: its status code name, message and, for INVALID_ARGUMENT, the BadRequest field violations. */
export class RavenError extends Error {
  constructor(
    readonly code: string,
    readonly details: string,
    readonly fieldViolations: FieldViolation[],
  ) {
    super(`${code}: ${details}`);
  }
}

// google.rpc.Status and BadRequest, from the vendored protos (their google/protobuf imports are bundled).
const rpcTypes = (() => {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(PROTOS_DIR, target);
  root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
  return { status: root.lookupType("google.rpc.Status"), badRequest: root.lookupType("google.rpc.BadRequest") };
})();

/** The error a failed call carries, with the field violations of its `grpc-status-details-bin` trailer. */
export function toRavenError(error: grpc.ServiceError): RavenError {
  const violations: FieldViolation[] = [];
  for (const raw of error.metadata?.get("grpc-status-details-bin") ?? []) {
    const status = rpcTypes.status.toObject(rpcTypes.status.decode(raw as Buffer)) as {
      details?: { type_url: string; value: Uint8Array }[];
    };
    for (const detail of status.details ?? []) {
      if (detail.type_url === "type.googleapis.com/google.rpc.BadRequest") {
        const badRequest = rpcTypes.badRequest.toObject(rpcTypes.badRequest.decode(detail.value)) as {
          field_violations?: FieldViolation[];
        };
        violations.push(...(badRequest.field_violations ?? []));
      }
    }
  }
  return new RavenError(grpc.status[error.code] ?? String(error.code), error.details, violations);
}

/** Codes on which a Watch is resumed from its last resume_token (see WatchTrainingRun in the proto). */
const RESUMABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED]);

export interface WatchOptions {
  resumeToken?: string;
  /** For demonstrations and tests: drop the stream after this many events and resume it. */
  disconnectAfter?: number;
  maxResumes?: number;
  onResume?: (resumeToken: string, reason: string) => void;
}

type Stub = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function serviceClient(file: string, service: string, address: string, credentials: grpc.ChannelCredentials): Stub {
  const definition = protoLoader.loadSync(file, LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    raven: { v1: Record<string, grpc.ServiceClientConstructor> };
  };
  return new loaded.raven.v1[service](address, credentials) as unknown as Stub;
}

export class RavenClient {
  private readonly runs: Stub;
  private readonly models: Stub;

  constructor(
    trainingRunAddress: string,
    trainedModelAddress: string,
    private readonly token: string,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    this.runs = serviceClient("raven/v1/training_run.proto", "TrainingRunService", trainingRunAddress, credentials);
    this.models = serviceClient("raven/v1/trained_model.proto", "TrainedModelService", trainedModelAddress, credentials);
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${this.token}`);
    return metadata;
  }

  private unary<T>(stub: Stub, method: string, request: object, timeoutSeconds = 30): Promise<T> {
    const deadline = new Date(Date.now() + timeoutSeconds * 1000);
    return new Promise((resolve, reject) => {
      stub[method](request, this.metadata(), { deadline }, (error: grpc.ServiceError | null, response: T) =>
        error ? reject(toRavenError(error)) : resolve(response),
      );
    });
  }

  listModelTemplates(): Promise<{ model_templates: ModelTemplate[]; next_page_token: string }> {
    return this.unary(this.runs, "ListModelTemplates", {});
  }

  createTrainingRun(trainingRun: object, requestId: string, validateOnly = false): Promise<TrainingRun> {
    return this.unary(this.runs, "CreateTrainingRun", {
      training_run: trainingRun,
      request_id: requestId,
      validate_only: validateOnly,
    });
  }

  getTrainingRun(name: string): Promise<TrainingRun> {
    return this.unary(this.runs, "GetTrainingRun", { name });
  }

  cancelTrainingRun(name: string, reason: string): Promise<TrainingRun> {
    return this.unary(this.runs, "CancelTrainingRun", { name, reason });
  }

  getTrainedModel(name: string): Promise<TrainedModel> {
    return this.unary(this.models, "GetTrainedModel", { name });
  }

  /**
   * Every event of the run until its terminal one, across reconnects: a Watch may end before the terminal
   * event (UNAVAILABLE when the server drains or the watcher fell behind, a dropped connection, a deadline),
   * and is then resumed with the last resume_token received, which loses and repeats nothing. A stream that
   * ends OK has nothing more to send: the run had already finished.
   */
  async *watchTrainingRun(name: string, options: WatchOptions = {}): AsyncGenerator<WatchTrainingRunResponse> {
    let resumeToken = options.resumeToken ?? "";
    let resumes = 0;
    let received = 0;
    for (;;) {
      const call = this.runs.WatchTrainingRun({ name, resume_token: resumeToken }, this.metadata()) as
        grpc.ClientReadableStream<WatchTrainingRunResponse>;
      try {
        for await (const response of call as AsyncIterable<WatchTrainingRunResponse>) {
          resumeToken = response.resume_token;
          received += 1;
          yield response;
          const change = response.event.state_changed;
          if (response.event.payload === "state_changed" && change && TERMINAL_STATES.has(change.to_state)) {
            call.cancel();
            return;
          }
          if (options.disconnectAfter && received === options.disconnectAfter) {
            call.cancel(); // as if the connection dropped: the loop below resumes
          }
        }
        return;
      } catch (error) {
        const failure = error as grpc.ServiceError;
        if (!RESUMABLE.has(failure.code) || resumes >= (options.maxResumes ?? 20)) {
          throw toRavenError(failure);
        }
        resumes += 1;
        options.onResume?.(resumeToken, grpc.status[failure.code]);
        if (failure.code !== grpc.status.CANCELLED) {
          await new Promise((done) => setTimeout(done, Math.min(500 * 2 ** resumes, 10_000)));
        }
      }
    }
  }

  close(): void {
    this.runs.close();
    this.models.close();
  }
}
