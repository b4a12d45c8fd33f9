// OpenAPI 3 document at /docs/json and its UI at /docs, plus the error body schema every route shares.

import { openapi } from "@elysiajs/openapi";
import { t } from "elysia";

export const ErrorBody = t.Object(
  { error: t.Object({ code: t.String(), message: t.String() }, { additionalProperties: true }) },
  { description: "Every error: a stable code to branch on and a human message" },
);

/** Spread into a route's `response` so the document lists the error shape. */
export const ErrorResponse = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  422: ErrorBody,
  429: ErrorBody,
};

export function openapiPlugin(version: string) {
  return openapi({
    path: "/docs",
    specPath: "/docs/json",
    documentation: {
      info: { title: "Parley", version, description: "Secure realtime messaging server: REST API" },
      components: {
        securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      },
    },
  });
}
