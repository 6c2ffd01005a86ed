// Signed, durable, at-least-once delivery-event webhooks.
export { WebhookDispatcher, webhookMetrics } from './dispatcher.ts';
export type { WebhookDispatcherOptions } from './dispatcher.ts';
export { webhookSchema, webhookEventTypes } from './schema.ts';
export type { WebhookConfig, WebhookConfigInput, WebhookEvent, WebhookEventInput, WebhookEventType } from './schema.ts';
export { signWebhook, verifyWebhookSignature, signatureHeader, eventIdHeader } from './signature.ts';
export { outboxName } from './outbox.ts';
