// Placeholder replaced by the MongoDB adapter (being written now).
import type { Store } from "../types.ts";
export async function openMongoStore(_url: string, _dbName: string): Promise<Store> {
  throw new Error("not yet");
}
