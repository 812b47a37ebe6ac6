import { useEffect, useId, useRef, type KeyboardEvent } from "react";
import { MessageContent } from "./MessageContent";
import type { DisplayModalEffect } from "./types";

export interface ModalEffectProps {
  effect: DisplayModalEffect;
  /** A button was pressed (the dialog is expected to close). */
  onButton?: (buttonId: string) => void;
  /** Closed without an answer (Escape or ×; only when the effect is dismissible). */
  onClose?: () => void;
  /** Read-only preview (playground): shown in place, not modal, buttons disabled. */
  preview?: boolean;
}

const FOCUSABLE =
  'button:not([disabled]), [href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A `display_modal` effect as an accessible dialog: labelled by its title, focus moved into it
 * on open, kept inside while open and given back to where it was on close.
 */
export function ModalEffect({ effect, onButton, onClose, preview = false }: ModalEffectProps) {
  const titleId = useId();
  const dialog = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (preview) return;
    const previous = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const first = dialog.current?.querySelector<HTMLElement>(FOCUSABLE);
    (first ?? dialog.current)?.focus();
    return () => {
      if (previous && previous.isConnected) previous.focus();
    };
  }, [preview]);

  function onKeyDown(event: KeyboardEvent<HTMLDivElement>) {
    if (preview) return;
    if (event.key === "Escape") {
      if (effect.dismissible && onClose) {
        event.stopPropagation();
        onClose();
      }
      return;
    }
    if (event.key === "Tab" && dialog.current) {
      const items = Array.from(dialog.current.querySelectorAll<HTMLElement>(FOCUSABLE));
      if (items.length === 0) {
        event.preventDefault();
        return;
      }
      const first = items[0]!;
      const last = items[items.length - 1]!;
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    }
  }

  const box = (
    <div
      ref={dialog}
      data-testid="effect-modal"
      className={`effect-modal${preview ? " preview" : ""}`}
      role="dialog"
      aria-modal={preview ? "false" : "true"}
      aria-labelledby={titleId}
      tabIndex={-1}
      onKeyDown={onKeyDown}
    >
      <div className="effect-modal-header">
        <h2 id={titleId}>{effect.title}</h2>
        {effect.dismissible && onClose && !preview ? (
          <button type="button" className="effect-dismiss" aria-label="Close" onClick={onClose}>
            ×
          </button>
        ) : null}
      </div>
      <div className="effect-modal-body">
        <MessageContent message={effect.message} />
      </div>
      <div className="effect-modal-buttons">
        {effect.buttons.map((button) => (
          <button
            key={button.id}
            type="button"
            data-testid={`modal-button-${button.id}`}
            className={`button ${button.style === "primary" ? "primary" : button.style === "danger" ? "danger" : "secondary"}`}
            disabled={preview}
            onClick={() => onButton?.(button.id)}
          >
            {button.label}
          </button>
        ))}
      </div>
    </div>
  );
  if (preview) return box;
  return <div className="effect-modal-backdrop">{box}</div>;
}
