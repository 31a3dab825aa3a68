export { CONTROL_FRAME_TYPES, INBOUND_FRAME_TYPES, OUTBOUND_FRAME_TYPES, TURN_FRAME_TYPES, WS_CLOSE, withoutNulls } from './ws-frames.ts';
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
export { CALLER_HEADER, SESSION_ID_PATTERN } from './runtime-api.ts';
export type { AgentStreamRequest, CancelResult, SessionAccess, SessionSummary, HistoryMessage } from './runtime-api.ts';
export type { ChatMessage, ChatCompletionRequest, ChatCompletionChunk, ChatCompletion, FinishReason, ToolCall, ToolCallDelta, Usage, OpenAIErrorBody } from './openai.ts';
