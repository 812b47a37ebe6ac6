/** The effects library for host applications. */
export { AcknowledgeEffect } from "./AcknowledgeEffect";
export { Effects } from "./Effects";
export { MessageContent } from "./MessageContent";
export { MessageEffect } from "./MessageEffect";
export { ModalEffect } from "./ModalEffect";
export { PreferenceEffect } from "./PreferenceEffect";
export { useDecision } from "./useDecision";
export type { DecisionState, UseDecisionOptions } from "./useDecision";
export * from "./types";
