import { useState } from "react";
import type { Api } from "../api";
import { AcknowledgeEffect } from "./AcknowledgeEffect";
import { MessageEffect } from "./MessageEffect";
import { ModalEffect } from "./ModalEffect";
import { PreferenceEffect } from "./PreferenceEffect";
import {
  type Decision,
  type DisplayMessageEffect,
  type DisplayModalEffect,
  type Effect,
  type UnknownEffect,
  type UserAcknowledgeEffect,
  type UserPreferenceEffect,
  effectKey,
} from "./types";

export interface EffectsProps {
  decision: Decision | null;
  /** Client for acknowledgements and preferences (not needed when `readOnly`). */
  api?: Api;
  /** Ask the server again (after an acknowledgement). */
  onRefresh?: () => Promise<unknown> | void;
  /** A modal button was pressed. */
  onModalButton?: (effect: DisplayModalEffect, buttonId: string) => void;
  /** Show what the decision contains without acting on it (playground). */
  readOnly?: boolean;
}

function isType<T extends Effect>(type: T["type"]) {
  return (effect: Effect | UnknownEffect): effect is T => effect.type === type;
}

/**
 * Render every effect of a decision: messages by placement, at most one modal at a time,
 * acknowledgements and preference questions. Effect types it does not know are skipped.
 */
export function Effects({ decision, api, onRefresh, onModalButton, readOnly = false }: EffectsProps) {
  // Closed messages and answered modals, by rule and action (they stay closed across decisions).
  const [closed, setClosed] = useState<ReadonlySet<string>>(() => new Set());
  const close = (key: string) => setClosed((old) => new Set(old).add(key));

  const effects = decision?.effects ?? [];
  const executionId = decision?.execution_id ?? null;
  const messages = effects
    .filter(isType<DisplayMessageEffect>("display_message"))
    .filter((effect) => readOnly || !closed.has(effectKey(effect)));
  const byPlacement = (placement: string) =>
    messages.filter((effect) =>
      placement === "banner"
        ? effect.placement !== "toast" && effect.placement !== "inline"
        : effect.placement === placement,
    );
  const modals = effects.filter(isType<DisplayModalEffect>("display_modal"));
  const openModal = readOnly ? undefined : modals.find((effect) => !closed.has(effectKey(effect)));
  const acknowledgements = effects.filter(isType<UserAcknowledgeEffect>("user_acknowledge"));
  const preferences = effects.filter(isType<UserPreferenceEffect>("user_preference"));

  const renderMessages = (list: DisplayMessageEffect[]) =>
    list.map((effect) => (
      <MessageEffect
        key={effectKey(effect)}
        effect={effect}
        onDismiss={readOnly ? undefined : () => close(effectKey(effect))}
      />
    ));
  const banners = byPlacement("banner");
  const inline = byPlacement("inline");
  const toasts = byPlacement("toast");

  return (
    <div data-testid="effects" className="effects">
      {banners.length > 0 ? <div className="effects-banners">{renderMessages(banners)}</div> : null}
      {inline.length > 0 ? <div className="effects-inline">{renderMessages(inline)}</div> : null}
      {acknowledgements.map((effect) => (
        <AcknowledgeEffect
          key={effectKey(effect)}
          effect={effect}
          executionId={executionId}
          api={api}
          onAccepted={onRefresh}
          readOnly={readOnly}
        />
      ))}
      {preferences.map((effect) => (
        <PreferenceEffect
          key={effectKey(effect)}
          effect={effect}
          executionId={executionId}
          api={api}
          readOnly={readOnly}
        />
      ))}
      {readOnly
        ? modals.map((effect) => <ModalEffect key={effectKey(effect)} effect={effect} preview />)
        : null}
      {openModal ? (
        <ModalEffect
          key={effectKey(openModal)}
          effect={openModal}
          onButton={(buttonId) => {
            close(effectKey(openModal));
            onModalButton?.(openModal, buttonId);
          }}
          onClose={() => close(effectKey(openModal))}
        />
      ) : null}
      {toasts.length > 0 ? (
        <div className="effects-toasts" aria-live="polite">
          {renderMessages(toasts)}
        </div>
      ) : null}
    </div>
  );
}
