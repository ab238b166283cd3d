/**
 * Connecting to the game server from a join ticket (contract sections 5.5 and 6.3): the
 * ticket's `socket_url` with its `token`. How a server reads the token is its own business;
 * the reference game server (`mm-gameserver`) takes it as the `token` query parameter, which
 * is the default here, and {@link TicketSocketOptions.url} builds any other URL.
 */

import type { components } from "./generated/api.js";

type JoinTicket = components["schemas"]["JoinInfo"];

/** What the helper needs of a WebSocket: the browser's, Node's (22+) or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class (`globalThis.WebSocket`, or `WebSocket` of the `ws` package). */
export type WebSocketConstructor<S extends WebSocketLike = WebSocketLike> = new (
  url: string,
  protocols?: string | string[],
) => S;

/** Options of {@link onTicket}. */
export interface TicketSocketOptions<S extends WebSocketLike = WebSocketLike> {
  /** The WebSocket class; default: the global `WebSocket` (browsers, Node 22+). */
  WebSocket?: WebSocketConstructor<S>;
  /** Builds the URL from the ticket; default {@link ticketUrl} (`?token=`). */
  url?: (ticket: JoinTicket) => string;
  /** Subprotocols to ask for. */
  protocols?: string | string[];
  /** Gives up (and closes the socket) when it is not open this many milliseconds later. */
  timeoutMs?: number;
}

/** The ticket's `socket_url` with its `token` as the `token` query parameter. */
export function ticketUrl(ticket: JoinTicket): string {
  const separator = ticket.socket_url.includes("?") ? "&" : "?";
  return `${ticket.socket_url}${separator}token=${encodeURIComponent(ticket.token)}`;
}

/**
 * Opens the game server's WebSocket for a join ticket (or for the `join` of a create or join
 * answer) and resolves with it once it is open; rejects if it fails or closes first, or is
 * not open within `timeoutMs` (default 10 s). The game server learns the player is in when
 * the socket opens; the caller owns the socket from then on.
 */
export function onTicket<S extends WebSocketLike = WebSocketLike>(
  ticket: JoinTicket | { join: JoinTicket },
  options: TicketSocketOptions<S> = {},
): Promise<S> {
  const join = "join" in ticket ? ticket.join : ticket;
  const Socket =
    options.WebSocket ??
    ((globalThis as { WebSocket?: unknown }).WebSocket as WebSocketConstructor<S> | undefined);
  if (Socket === undefined) {
    return Promise.reject(
      new TypeError("no global WebSocket here (Node before 22): pass options.WebSocket, e.g. from the ws package"),
    );
  }
  const url = (options.url ?? ticketUrl)(join);
  const socket = new Socket(url, options.protocols);
  return new Promise<S>((resolve, reject) => {
    const timer = setTimeout(() => {
      fail(new Error(`the game server's WebSocket did not open within ${options.timeoutMs ?? 10_000} ms`));
      socket.close();
    }, options.timeoutMs ?? 10_000);
    const settle = () => {
      clearTimeout(timer);
      socket.onopen = null;
      socket.onerror = null;
      socket.onclose = null;
    };
    const fail = (error: Error) => {
      settle();
      reject(error);
    };
    socket.onopen = () => {
      settle();
      resolve(socket);
    };
    socket.onerror = (event: { message?: string } | undefined) =>
      fail(new Error(`the game server's WebSocket failed: ${event?.message ?? "connection error"}`));
    socket.onclose = (event: { code?: number; reason?: string } | undefined) =>
      fail(new Error(`the game server's WebSocket closed before opening (${event?.code ?? "?"} ${event?.reason ?? ""})`));
  });
}
