/** The shapes of POST /api/rules/engine/execute/ answers (see the issue #6 contract). */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type ContentType = "text/html" | "text/plain" | "application/json";

export interface RenderedMessage {
  format: string;
  content_type: ContentType | string;
  content: Json;
}

interface EffectBase {
  rule_id: string;
  action_index: number;
  blocking: boolean;
  message?: RenderedMessage | null;
  render_error?: string;
}

export type MessageLevel = "info" | "success" | "warning" | "error";
export type MessagePlacement = "banner" | "toast" | "inline";

export interface DisplayMessageEffect extends EffectBase {
  type: "display_message";
  level: MessageLevel | string;
  placement: MessagePlacement | string;
  dismissible: boolean;
}

export interface ModalButton {
  id: string;
  label: string;
  style?: string;
}

export interface DisplayModalEffect extends EffectBase {
  type: "display_modal";
  title: string;
  buttons: ModalButton[];
  dismissible: boolean;
}

export interface UserAcknowledgeEffect extends EffectBase {
  type: "user_acknowledge";
  ack_key: string;
  title: string;
  acknowledged: boolean;
}

export type PreferenceValue = string | number | boolean;

export interface PreferenceOption {
  value: PreferenceValue;
  label: string;
}

export interface UserPreferenceEffect extends EffectBase {
  type: "user_preference";
  preference_key: string;
  options: PreferenceOption[];
  default?: PreferenceValue | null;
  value?: PreferenceValue | null;
  answered: boolean;
}

/** An effect type this client does not know: kept so nothing is silently lost. */
export interface UnknownEffect extends EffectBase {
  type: string;
}

export type Effect =
  | DisplayMessageEffect
  | DisplayModalEffect
  | UserAcknowledgeEffect
  | UserPreferenceEffect;

export interface MatchedRule {
  id: string;
  name: string;
  version: number;
  priority: number;
}

/** One node of a dry run's explanation tree (produced by the backend). */
export interface ExplanationNode {
  op: string;
  expression?: string;
  result?: Json;
  truthy?: boolean;
  var?: string;
  args?: ExplanationNode[];
}

export interface RuleResult {
  id: string;
  name: string;
  version?: number;
  priority?: number;
  outcome: string;
  error?: string | null;
  explanation?: ExplanationNode | null;
}

export interface Decision {
  execution_id: string | null;
  entry_point: string;
  outcome: string;
  matched_rules: MatchedRule[];
  effects: (Effect | UnknownEffect)[];
  blocking: boolean;
  duration_ms?: number;
  dry_run?: boolean;
  rules?: RuleResult[];
}

/** A stable key for an effect across decisions: the rule and the action's position in it. */
export function effectKey(effect: { rule_id: string; action_index: number }): string {
  return `${effect.rule_id}:${effect.action_index}`;
}
