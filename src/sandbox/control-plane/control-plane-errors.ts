// The control plane's errors: each has a code for programs and a sentence for the user that says what to do.

export type ControlPlaneErrorCode =
  /** The Kubernetes or etcd binaries are not there: build them first. */
  | 'MISSING_BINARY'
  /** openssl failed while making the certificates. */
  | 'PKI_FAILED'
  /** A process could not be started, or the namespace is not there. */
  | 'START_FAILED'
  /** A control plane recorded in the same state folder still runs. */
  | 'ALREADY_RUNNING'
  /** The API server did not answer /readyz in time, or a component exited. */
  | 'NOT_READY'
  /** A request to the API server could not be made or its answer not read. */
  | 'REQUEST_FAILED';

export class ControlPlaneError extends Error {
  override readonly name = 'ControlPlaneError';
  constructor(
    readonly code: ControlPlaneErrorCode,
    message: string,
  ) {
    super(message);
  }
}
