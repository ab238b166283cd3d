/**
 * `@matchmaker/client`: the matchmaker's lobby API for game code (browser or Node).
 *
 * The types in `./generated/api.ts` are generated from the daemon's `/openapi.json`
 * (`npm run generate`); this file is the thin hand-written layer over `fetch`: one method per
 * route, listing as an async iterator over cursor pages, and {@link ProblemError}s whose
 * `code` is the union of the codes the API answers.
 */

import type { components, paths } from "./generated/api.js";

export type { components, paths } from "./generated/api.js";

/** A game, as the API shows it (contract section 5.5). */
export type Game = components["schemas"]["GameView"];
/** A game plus the caller's join ticket (the answer of create and join). */
export type GameWithJoin = components["schemas"]["GameWithJoin"];
/** Where and with what a player connects to the game server. */
export type JoinTicket = components["schemas"]["JoinInfo"];
/** One page of open games. */
export type GamePage = components["schemas"]["GamePage"];
/** A game's state. */
export type GameState = components["schemas"]["GameStateView"];
/** The body of `create`. */
export type CreateGameRequest = components["schemas"]["CreateGameRequest"];
/** The body of `quickJoin`. */
export type QuickJoinRequest = components["schemas"]["QuickJoinRequest"];
/** An RFC 9457 problem document, as every error of the API is answered. */
export type ProblemDocument = components["schemas"]["Problem"];
/** Every `code` a problem document of the API can carry. */
export type ProblemCode = components["schemas"]["ProblemCode"];
/**
 * The query of `list`, every member optional: `product` (absent: every product), `region`,
 * `min_seats_free`, `sort` (`oldest` or `fullest`), `limit` (page size), and `labels`, sent as
 * one `labels.<key>=<value>` parameter per pair (games carrying all of them are listed).
 */
export type ListQuery = Omit<NonNullable<paths["/v1/games"]["get"]["parameters"]["query"]>, "cursor"> & {
  labels?: Record<string, string>;
};

/** A value or a function producing it, possibly asynchronously (e.g. a token refresher). */
export type Provider<T> = T | (() => T | Promise<T>);

/** How a {@link MatchmakerClient} reaches the API and who the player is. */
export interface ClientOptions {
  /** The lobby API's base URL, e.g. `https://lobby.example.com` (a path prefix is kept). */
  baseUrl: string;
  /** The player's JWT (`auth.mode = "jwt"`), sent as `Authorization: Bearer …`. */
  token?: Provider<string>;
  /** The player id sent as `X-Player-Id` (`auth.mode = "header"`: development and test). */
  playerId?: string;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** More headers sent with every request. */
  headers?: Record<string, string>;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborts the request. */
  signal?: AbortSignal;
}

/**
 * An error answer of the API: its problem document, with `code` typed as the union of the
 * real codes and `retryAfter` (seconds) from the `Retry-After` header of 429s.
 */
export class ProblemError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The stable machine-readable code. */
  readonly code: ProblemCode;
  /** What exactly went wrong, for a human (may change between versions). */
  readonly detail: string;
  /** Seconds to wait before trying again (`Retry-After`), when the answer says. */
  readonly retryAfter: number | undefined;
  /** The request's id, also in the server's logs. */
  readonly requestId: string | undefined;
  /** The whole problem document. */
  readonly problem: ProblemDocument;

  constructor(problem: ProblemDocument, retryAfter?: number) {
    super(`${problem.status} ${problem.code}: ${problem.detail}`);
    this.name = "ProblemError";
    this.status = problem.status;
    this.code = problem.code;
    this.detail = problem.detail;
    this.retryAfter = retryAfter;
    this.requestId = problem.request_id ?? undefined;
    this.problem = problem;
  }
}

/** Whether `error` is a {@link ProblemError}, of one of `codes` when given. */
export function isProblem(error: unknown, ...codes: ProblemCode[]): error is ProblemError {
  return error instanceof ProblemError && (codes.length === 0 || codes.includes(error.code));
}

/** An answer that is neither the expected one nor a problem document (e.g. a proxy's page). */
export class UnexpectedResponseError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The start of the body. */
  readonly body: string;

  constructor(status: number, body: string) {
    super(`unexpected answer ${status}: ${body.slice(0, 200)}`);
    this.name = "UnexpectedResponseError";
    this.status = status;
    this.body = body.slice(0, 2000);
  }
}

/** The lobby API, as one player. */
export class MatchmakerClient {
  private readonly baseUrl: string;
  private readonly options: ClientOptions;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ClientOptions) {
    this.options = options;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== "function") {
      throw new TypeError("no global fetch here: pass options.fetch");
    }
    this.fetchImpl = fetchImpl.bind(globalThis);
  }

  /** `POST /v1/games`: creates a game; the answer carries the creator's join ticket. */
  create(request: CreateGameRequest, options?: CallOptions): Promise<GameWithJoin> {
    return this.call<GameWithJoin>("POST", "/v1/games", options, request);
  }

  /** `GET /v1/games`: one page of open games; pass the previous page's `next_cursor`. */
  listPage(query: ListQuery & { cursor?: string | null }, options?: CallOptions): Promise<GamePage> {
    const params = new URLSearchParams();
    if (query.product != null) params.set("product", query.product);
    if (query.region != null) params.set("region", query.region);
    if (query.min_seats_free != null) params.set("min_seats_free", String(query.min_seats_free));
    if (query.sort != null) params.set("sort", query.sort);
    for (const [key, value] of Object.entries(query.labels ?? {})) params.set(`labels.${key}`, value);
    if (query.limit != null) params.set("limit", String(query.limit));
    if (query.cursor) params.set("cursor", query.cursor);
    return this.call<GamePage>("GET", `/v1/games?${params}`, options);
  }

  /**
   * Every open game matching `query` (of one product or all; oldest first unless
   * `sort: "fullest"`), fetched page by page (`limit` games a page) as the iteration goes:
   * `for await (const game of client.list({product: "chess", labels: {mode: "ranked"}}))`.
   */
  async *list(query: ListQuery, options?: CallOptions): AsyncGenerator<Game, void, undefined> {
    for await (const page of this.pages(query, options)) {
      yield* page.games;
    }
  }

  /** The pages of {@link list}, one request each. */
  async *pages(query: ListQuery, options?: CallOptions): AsyncGenerator<GamePage, void, undefined> {
    let cursor: string | null | undefined = undefined;
    do {
      const page: GamePage = await this.listPage({ ...query, cursor }, options);
      yield page;
      cursor = page.next_cursor;
    } while (cursor);
  }

  /** `GET /v1/games/{id}`: one game, ended ones included while their tombstone exists. */
  get(id: string, options?: CallOptions): Promise<Game> {
    return this.call<Game>("GET", `/v1/games/${encodeURIComponent(id)}`, options);
  }

  /** `POST /v1/games/{id}/join`: reserves a seat (or re-issues the player's ticket). */
  join(id: string, options?: CallOptions): Promise<GameWithJoin> {
    return this.call<GameWithJoin>("POST", `/v1/games/${encodeURIComponent(id)}/join`, options);
  }

  /**
   * `POST /v1/games/quick-join`: a seat in the fullest open game of a product matching
   * `region` and `labels` (or the seat the player already holds in one). None matches: a new
   * game when `create` is given (`created` is then true: the player is its creator and
   * connects first), else a {@link ProblemError} `no_open_game`.
   */
  async quickJoin(
    request: QuickJoinRequest,
    options?: CallOptions,
  ): Promise<GameWithJoin & { created: boolean }> {
    const { status, body } = await this.callWithStatus<GameWithJoin>("POST", "/v1/games/quick-join", options, request);
    return { ...body, created: status === 201 };
  }

  /**
   * `POST /v1/games/{id}/rejoin`: a fresh ticket to get back into a game the player is in (it
   * is in progress, or a lobby they were in); others get a {@link ProblemError} `not_in_game`.
   */
  rejoin(id: string, options?: CallOptions): Promise<GameWithJoin> {
    return this.call<GameWithJoin>("POST", `/v1/games/${encodeURIComponent(id)}/rejoin`, options);
  }

  /** `DELETE /v1/games/{id}`: the creator cancels a game that has not started. */
  async cancel(id: string, options?: CallOptions): Promise<void> {
    await this.call<undefined>("DELETE", `/v1/games/${encodeURIComponent(id)}`, options);
  }

  private async headers(hasBody: boolean): Promise<Record<string, string>> {
    const headers: Record<string, string> = { Accept: "application/json", ...this.options.headers };
    if (hasBody) headers["Content-Type"] = "application/json";
    if (this.options.playerId !== undefined) headers["X-Player-Id"] = this.options.playerId;
    const token = this.options.token;
    if (token !== undefined) {
      headers["Authorization"] = `Bearer ${typeof token === "function" ? await token() : token}`;
    }
    return headers;
  }

  private async call<T>(method: string, path: string, options: CallOptions | undefined, body?: unknown): Promise<T> {
    return (await this.callWithStatus<T>(method, path, options, body)).body;
  }

  private async callWithStatus<T>(
    method: string,
    path: string,
    options: CallOptions | undefined,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const init: RequestInit = { method, headers: await this.headers(body !== undefined) };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (options?.signal) init.signal = options.signal;
    const response = await this.fetchImpl(`${this.baseUrl}${path}`, init);
    if (response.status === 204) return { status: 204, body: undefined as T };
    const text = await response.text();
    if (response.ok) {
      try {
        return { status: response.status, body: JSON.parse(text) as T };
      } catch {
        throw new UnexpectedResponseError(response.status, text);
      }
    }
    throw problemOf(response, text);
  }
}

/** The error for a failed answer: a {@link ProblemError} when it is a problem document. */
function problemOf(response: Response, text: string): Error {
  const type = response.headers.get("content-type") ?? "";
  if (type.includes("json")) {
    try {
      const problem = JSON.parse(text) as ProblemDocument;
      if (typeof problem.code === "string" && typeof problem.status === "number") {
        return new ProblemError(problem, retryAfterSecs(response.headers.get("retry-after")));
      }
    } catch {
      // not JSON after all: reported below
    }
  }
  return new UnexpectedResponseError(response.status, text);
}

/** `Retry-After` as seconds: delta-seconds, or an HTTP date. */
function retryAfterSecs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

export {
  onTicket,
  ticketUrl,
  type TicketSocketOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./ticket.js";
