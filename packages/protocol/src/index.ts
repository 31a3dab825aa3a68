export {
  CONTROL_FRAME_TYPES,
  FRAME_SEQ_HEADER,
  INBOUND_FRAME_TYPES,
  OUTBOUND_FRAME_TYPES,
  TURN_FRAME_TYPES,
  WS_CLOSE,
  withoutNulls,
} from './ws-frames.ts';
export type {
  InboundFrame,
  InboundFrameType,
  OutboundFrameType,
  UserMessageFrame,
  ToolResultFrame,
  SwitchAgentFrame,
  HitlDecisionFrame,
  CancelFrame,
  PingFrame,
  ResumeFrame,
  TurnFrame,
  ControlFrame,
  FrameTraceContext,
  StreamChunk,
} from './ws-frames.ts';
export { assertTurnFrame, parseInboundFrame, validateInboundFrame, validateTurnFrame } from './validate-frame.ts';
export type { FrameProblem, FrameProblemKind, FrameValidation, TurnFrameErrors } from './validate-frame.ts';
export { AUDIT_EVENT_TYPE_NAMES, AUDIT_EVENT_TYPES, CALLER_HEADER, SESSION_ID_PATTERN } from './runtime-api.ts';
export type {
  AgentStreamRequest,
  AuditEventType,
  Caller,
  CancelResult,
  HistoryMessage,
  PendingApproval,
  PendingApprovalList,
  SessionAccess,
  SessionSummary,
} from './runtime-api.ts';
export { MAX_WRITE_INTERVAL_MS, WRITE_INTERVAL_HEADER } from './openai.ts';
export type {
  ChatMessage,
  ChatCompletionRequest,
  ChatCompletionChunk,
  ChatCompletion,
  FinishReason,
  ToolCall,
  ToolCallDelta,
  Usage,
  OpenAIErrorBody,
} from './openai.ts';
export { addToolCallDeltas, openAIErrorOf, readOpenAIErrorBody, ToolCallAssembler } from './openai-parsing.ts';
export type { OpenAIErrorFields } from './openai-parsing.ts';
