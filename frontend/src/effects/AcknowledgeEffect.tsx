import { useState } from "react";
import { type Api, type ApiError, toApiError } from "../api";
import { ErrorMessage } from "../ErrorMessage";
import { MessageContent } from "./MessageContent";
import type { UserAcknowledgeEffect } from "./types";

export interface AcknowledgeEffectProps {
  effect: UserAcknowledgeEffect;
  executionId: string | null;
  api?: Api;
  /**
   * Ask the server again after the acknowledgement is stored. The flow stays blocked until the
   * new decision says so: this component never unblocks anything by itself.
   */
  onAccepted?: () => Promise<unknown> | void;
  readOnly?: boolean;
}

type Phase = "idle" | "posting" | "confirming" | "unconfirmed";

/** A `user_acknowledge` effect: terms with an Accept button that records the acceptance. */
export function AcknowledgeEffect({
  effect,
  executionId,
  api,
  onAccepted,
  readOnly = false,
}: AcknowledgeEffectProps) {
  const [phase, setPhase] = useState<Phase>("idle");
  const [error, setError] = useState<ApiError | null>(null);
  const canPost = !readOnly && api !== undefined && executionId !== null;

  async function accept() {
    if (!canPost || !api || executionId === null) return;
    setPhase("posting");
    setError(null);
    try {
      await api.acknowledge(executionId, effect.ack_key);
    } catch (exc) {
      setError(toApiError(exc));
      setPhase("idle");
      return;
    }
    setPhase("confirming");
    try {
      await onAccepted?.();
    } finally {
      // If the new decision still shows this effect unacknowledged, say so and allow a retry.
      setPhase("unconfirmed");
    }
  }

  const headingId = `ack-${effect.ack_key}-title`;
  return (
    <section
      data-testid="effect-acknowledge"
      data-acknowledged={effect.acknowledged ? "true" : "false"}
      className={`effect-acknowledge${effect.blocking ? " blocking" : ""}`}
      aria-labelledby={headingId}
    >
      <h3 id={headingId}>{effect.title}</h3>
      <div className="effect-acknowledge-terms">
        <MessageContent message={effect.message} />
      </div>
      {effect.acknowledged ? (
        <p className="effect-acknowledge-done" role="status">
          ✓ Accepted
        </p>
      ) : (
        <div className="effect-acknowledge-actions">
          <button
            type="button"
            data-testid="acknowledge-accept"
            className="button primary"
            disabled={!canPost || phase === "posting" || phase === "confirming"}
            onClick={() => void accept()}
          >
            {phase === "posting" ? "Accepting…" : "Accept"}
          </button>
          {phase === "confirming" ? (
            <span className="muted" role="status">
              Waiting for the server to confirm…
            </span>
          ) : null}
          {phase === "unconfirmed" ? (
            <span className="muted" role="status">
              Not confirmed by the server yet.
            </span>
          ) : null}
        </div>
      )}
      {error ? <ErrorMessage error={error} /> : null}
    </section>
  );
}
