/**
 * The client against a live daemon (`scripts/check-client.sh` starts redis-server, the
 * reference game server and matchmakerd, and passes MM_API_URL and MM_CORS_ORIGIN): create →
 * connect with onTicket → list across cursor pages → join → connect → get → cancel, quick join
 * and rejoin, typed problem errors, and a CORS preflight.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";

import {
  type Game,
  MatchmakerClient,
  type ProblemCode,
  ProblemError,
  isProblem,
  onTicket,
} from "../src/index.js";

const baseUrl = process.env.MM_API_URL ?? "http://127.0.0.1:8080";
const product = process.env.MM_PRODUCT ?? "chess";
const run = `${process.pid}`;

function as(player: string): MatchmakerClient {
  return new MatchmakerClient({ baseUrl, playerId: `${player}-${run}` });
}

/** Polls `check` until it returns a value, failing after `ms`. */
async function until<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function listAll(client: MatchmakerClient, limit: number): Promise<Game[]> {
  const games: Game[] = [];
  for await (const game of client.list({ product, limit })) games.push(game);
  return games;
}

// Type-level: `code` is the union of the real codes, not a free string.
const known: ProblemCode = "game_full";
// @ts-expect-error a code the API never answers is not a ProblemCode
const unknown: ProblemCode = "no_such_code";
void known;
void unknown;

test("create, connect, list across pages, join, connect, get, cancel", async () => {
  const alice = as("alice");
  const carol = as("carol");
  const bob = as("bob");

  const first = await alice.create({ product, capacity: 2 });
  assert.equal(first.state, "created");
  assert.match(first.join.socket_url, /^wss?:\/\//);
  const second = await carol.create({
    product,
    capacity: 3,
    settings: { mode: "blitz" },
    labels: { mode: "blitz" },
  });

  const aliceSocket = await onTicket(first, { WebSocket });
  const carolSocket = await onTicket(second.join, { WebSocket });
  assert.equal(aliceSocket.readyState, WebSocket.OPEN);

  // Both lobbies open once the game server's creator_joined events are applied; a page of one
  // game makes the iterator follow next_cursor.
  const listed = await until("both games listed", 10_000, async () => {
    const games = await listAll(alice, 1);
    const ids = games.map((game) => game.id);
    return ids.includes(first.id) && ids.includes(second.id) ? games : undefined;
  });
  const pages: number[] = [];
  for await (const page of alice.pages({ product, limit: 1 })) pages.push(page.games.length);
  assert.ok(pages.length >= 2, `one game a page gives several pages: ${pages}`);
  assert.ok(listed.every((game) => game.state === "creator_joined" && game.seats_free > 0));
  // Filters reach the API: labels as labels.<key>, min_seats_free, sort, every product.
  const blitz: string[] = [];
  for await (const game of alice.list({ labels: { mode: "blitz" }, min_seats_free: 2, sort: "fullest" })) {
    blitz.push(game.id);
  }
  assert.ok(blitz.includes(second.id) && !blitz.includes(first.id), `filtered: ${blitz}`);

  const joined = await bob.join(first.id);
  assert.equal(joined.id, first.id);
  const bobSocket = await onTicket(joined, { WebSocket });
  const full = await until("bob present", 10_000, async () => {
    const game = await bob.get(first.id);
    return game.players.includes(`bob-${run}`) ? game : undefined;
  });
  assert.equal(full.seats_free, 0);

  await carol.cancel(second.id);
  const cancelled = await carol.get(second.id);
  assert.equal(cancelled.state, "ended");

  for (const socket of [aliceSocket, bobSocket, carolSocket]) socket.close();
});

test("problems are ProblemErrors with a typed code", async () => {
  const dave = as("dave");
  await assert.rejects(dave.join(`${product}.00000000-0000-0000-0000-000000000000`), (error: unknown) => {
    assert.ok(isProblem(error, "game_not_found"), String(error));
    assert.equal(error.status, 404);
    assert.ok(error.detail.length > 0);
    assert.ok(error.requestId, "problems carry the request id");
    return true;
  });
  await assert.rejects(dave.create({ product: "nosuchgame", capacity: 2 }), (error: unknown) => {
    assert.ok(error instanceof ProblemError);
    assert.equal(error.code, "unknown_product");
    return true;
  });
  const anonymous = new MatchmakerClient({ baseUrl });
  await assert.rejects(anonymous.get("chess.x"), (error: unknown) => isProblem(error, "unauthenticated"));

  const created = await dave.create({ product, capacity: 2 });
  const eve = as("eve");
  await assert.rejects(eve.cancel(created.id), (error: unknown) => isProblem(error, "not_creator"));
  await dave.cancel(created.id);
});

test("quickJoin fills a matching lobby or creates one; rejoin lets a player back in", async () => {
  // A label of this run only, so lobbies of other tests never match.
  const labels = { run: `quick-${run}` };
  const grace = as("grace");
  const heidi = as("heidi");
  const ivan = as("ivan");
  await assert.rejects(grace.quickJoin({ product, labels }), (error: unknown) => isProblem(error, "no_open_game"));
  const created = await grace.quickJoin({ product, labels, create: { capacity: 3 } });
  assert.equal(created.created, true);
  assert.equal(created.state, "created");
  assert.equal(created.creator_id, `grace-${run}`);
  assert.deepEqual(created.labels, labels);
  const graceSocket = await onTicket(created, { WebSocket });
  await until("the lobby open", 10_000, async () => {
    const game = await grace.get(created.id);
    return game.state === "creator_joined" && game.players.includes(`grace-${run}`) ? game : undefined;
  });

  const joined = await heidi.quickJoin({ product, labels });
  assert.equal(joined.id, created.id);
  assert.equal(joined.created, false);
  const again = await heidi.quickJoin({ product, labels });
  assert.equal(again.join.token, joined.join.token, "a quick join again keeps the seat and its ticket");
  const heidiSocket = await onTicket(joined, { WebSocket });
  await until("heidi present", 10_000, async () => {
    const game = await heidi.get(created.id);
    return game.players.includes(`heidi-${run}`) ? game : undefined;
  });
  heidiSocket.close();
  await until("heidi gone", 10_000, async () => {
    const game = await heidi.get(created.id);
    return game.players.includes(`heidi-${run}`) ? undefined : game;
  });

  await assert.rejects(ivan.rejoin(created.id), (error: unknown) => isProblem(error, "not_in_game"));
  const back = await heidi.rejoin(created.id);
  assert.equal(back.id, created.id);
  assert.notEqual(back.join.token, joined.join.token, "a fresh ticket");
  const backSocket = await onTicket(back, { WebSocket });
  await until("heidi back", 10_000, async () => {
    const game = await heidi.get(created.id);
    return game.players.includes(`heidi-${run}`) ? game : undefined;
  });

  for (const socket of [graceSocket, backSocket]) socket.close();
  await grace.cancel(created.id);
});

test("a 429 carries retryAfter from Retry-After", async () => {
  // The development defaults allow 3 live games and a burst of 3 creates per player.
  const frank = as("frank");
  const created: string[] = [];
  let refusal: ProblemError | undefined;
  for (let i = 0; i < 6 && refusal === undefined; i++) {
    try {
      created.push((await frank.create({ product, capacity: 2 })).id);
    } catch (error) {
      if (!isProblem(error, "rate_limited", "quota_exceeded")) throw error;
      refusal = error;
    }
  }
  assert.ok(refusal, "a limit refused a create");
  assert.equal(refusal.status, 429);
  assert.ok(refusal.retryAfter !== undefined && refusal.retryAfter >= 1, `retryAfter ${refusal.retryAfter}`);
  for (const id of created) await frank.cancel(id);
});

test("a preflight from the configured origin is allowed", { skip: !process.env.MM_CORS_ORIGIN }, async () => {
  const origin = process.env.MM_CORS_ORIGIN!;
  const answer = await fetch(`${baseUrl}/v1/games`, {
    method: "OPTIONS",
    headers: {
      Origin: origin,
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "content-type,x-player-id",
    },
  });
  assert.ok(answer.ok, `preflight answered ${answer.status}`);
  assert.equal(answer.headers.get("access-control-allow-origin"), origin);
  const refused = await fetch(`${baseUrl}/v1/games`, {
    method: "OPTIONS",
    headers: { Origin: "https://elsewhere.example", "Access-Control-Request-Method": "POST" },
  });
  assert.equal(refused.headers.get("access-control-allow-origin"), null);
});
