// The fanout port: conversation events go to a topic; every node's hub subscribes to the topics it needs.
// In process by default; Redis across nodes (scale-out issue).

export interface Broker {
  publish(topic: string, event: unknown): void;
  /** Returns the unsubscribe function. */
  subscribe(topic: string, handler: (event: unknown) => void): () => void;
  close(): Promise<void>;
}
