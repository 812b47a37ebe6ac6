import { useId, useState } from "react";
import { type Api, type ApiError, toApiError } from "../api";
import { ErrorMessage } from "../ErrorMessage";
import { MessageContent } from "./MessageContent";
import type { Json, PreferenceValue, UserPreferenceEffect } from "./types";

export interface PreferenceEffectProps {
  effect: UserPreferenceEffect;
  executionId: string | null;
  api?: Api;
  readOnly?: boolean;
}

/** A `user_preference` effect: one choice among options, stored on the server when picked. */
export function PreferenceEffect({
  effect,
  executionId,
  api,
  readOnly = false,
}: PreferenceEffectProps) {
  const name = useId();
  const [selected, setSelected] = useState<PreferenceValue | null>(effect.value ?? null);
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState<Json | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const canPost = !readOnly && api !== undefined && executionId !== null;

  async function choose(value: PreferenceValue) {
    setSelected(value);
    if (!canPost || !api || executionId === null) return;
    setSaving(true);
    setSaved(undefined);
    setError(null);
    try {
      const answer = await api.preference(executionId, effect.preference_key, value);
      setSaved(answer.value);
    } catch (exc) {
      setError(toApiError(exc));
    } finally {
      setSaving(false);
    }
  }

  const savedLabel =
    saved === undefined
      ? ""
      : (effect.options.find((option) => option.value === saved)?.label ?? String(saved));
  return (
    <fieldset data-testid="effect-preference" className="effect-preference">
      <legend>
        <MessageContent message={effect.message} />
      </legend>
      <div className="effect-preference-options">
        {effect.options.map((option) => {
          const id = `${name}-${String(option.value)}`;
          return (
            <label key={String(option.value)} htmlFor={id} className="effect-preference-option">
              <input
                id={id}
                type="radio"
                name={name}
                value={String(option.value)}
                data-testid={`preference-option-${String(option.value)}`}
                checked={selected === option.value}
                disabled={!canPost || saving}
                onChange={() => void choose(option.value)}
              />
              {option.label}
            </label>
          );
        })}
      </div>
      {saving ? (
        <p className="muted" role="status">
          Saving…
        </p>
      ) : null}
      {saved !== undefined ? (
        <p data-testid="preference-saved" className="effect-preference-saved" role="status">
          Saved: {savedLabel}
        </p>
      ) : null}
      {error ? <ErrorMessage error={error} /> : null}
    </fieldset>
  );
}
