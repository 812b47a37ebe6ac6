import { MessageContent } from "./MessageContent";
import type { DisplayMessageEffect } from "./types";

const LEVELS = new Set(["info", "success", "warning", "error"]);
const PLACEMENTS = new Set(["banner", "toast", "inline"]);

export interface MessageEffectProps {
  effect: DisplayMessageEffect;
  onDismiss?: () => void;
}

/** A `display_message` effect: a banner, toast or inline note styled by its level. */
export function MessageEffect({ effect, onDismiss }: MessageEffectProps) {
  const level = LEVELS.has(effect.level) ? effect.level : "info";
  const placement = PLACEMENTS.has(effect.placement) ? effect.placement : "banner";
  // Errors and warnings interrupt a screen reader; the rest are announced politely.
  const role = level === "error" || level === "warning" ? "alert" : "status";
  return (
    <div
      data-testid="effect-message"
      data-level={level}
      data-placement={placement}
      className={`effect-message level-${level} placement-${placement}`}
      role={role}
    >
      <div className="effect-message-body">
        <MessageContent message={effect.message} />
        {!effect.message && effect.render_error ? (
          <p className="effect-text muted">This message could not be shown.</p>
        ) : null}
      </div>
      {effect.dismissible && onDismiss ? (
        <button
          type="button"
          className="effect-dismiss"
          aria-label="Dismiss message"
          onClick={onDismiss}
        >
          ×
        </button>
      ) : null}
    </div>
  );
}
