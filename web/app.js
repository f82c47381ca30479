// The chat page: plain JavaScript against the HTTP API and the WebSocket API (docs/api.md).
// Served from the API's own origin locally; on AWS from CloudFront, where config.json says
// where the WebSocket API is (written at deploy time).
"use strict";

const PAGE = 50;                 // messages per history page
const TYPING_EVERY_MS = 2000;    // the API passes on one typing frame per user and group per 2 s
const TYPING_SHOWN_MS = 3000;    // how long "… is typing" stays without another frame
const GROUPS_EVERY_MS = 10000;   // unread counts of the other groups, while the page is visible
const MAX_BACKOFF_MS = 8000;     // longest wait between two reconnection attempts
const $ = (id) => document.getElementById(id);
// One formatter for every message: toLocaleTimeString builds a new one per call.
const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });

const state = {
  config: { api: "", websocket: null },
  token: sessionStorage.getItem("chat.token"),
  me: null,                      // {user_id, name, group_id, can_edit, can_delete}
  group: null,                   // the group on screen
  role: null,                    // the user's role in it: owner, admin or member
  groups: [],                    // GET /groups: [{group_id, name, role, unread, last_message_id}]
  members: new Map(),            // user_id -> {user_id, name, role, online}
  readSent: new Map(),           // group_id -> the read mark last sent
  readTimer: null,
  typingSentAt: 0,
  typingTimer: null,
  lost: null,                    // a group the user was removed from: its socket is not reopened
  messages: new Map(),           // id -> message as the API gives it
  deleted: new Set(),            // ids seen deleted: a late page must not bring them back
  newest: 0,                     // highest id seen: where a reconnection catches up from
  olderUrl: null,                // the Link to the next older page, if any
  loadingOlder: false,
  history: Promise.resolve(),    // the first page's load, which a catch-up waits for
  socket: null,
  backoff: 500,
  reconnectTimer: null,
};

// --- HTTP ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(state.config.api + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "the chat API cannot be reached");
  }
  let data = null;
  try { data = await response.json(); } catch (e) { /* not JSON: reported below */ }
  if (!response.ok) {
    const reason = (data && (data.error || data.message)) || `HTTP ${response.status}`;
    throw new ApiError(response.status, reason, Number(response.headers.get("Retry-After")) || 0);
  }
  return { data, link: nextLink(response.headers.get("Link")) };
}

// `</messages/1?before=1028&limit=50>; rel="next"` -> "/messages/1?before=1028&limit=50"
function nextLink(header) {
  const match = header && header.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  return match ? match[1] : null;
}

// A send, edit or delete answered 409 (in the log, not stored yet) or 503 is tried again after
// Retry-After, a few times: sends keep their client_message_id, so a retry never duplicates.
async function withRetry(attempt) {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof ApiError) || ![409, 503].includes(e.status) || tries >= 4) throw e;
      await sleep((e.retryAfter || 1) * 1000);
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// --- messages on screen --------------------------------------------------------------------

function stamp(message) {
  return Date.parse(message.edited_at || message.created_at) || 0;
}

// Applies one message (from a page or a frame): the newest version of each id wins, and a
// deleted id stays deleted.
function upsert(message) {
  upsertAll([message]);
}

// Applies a page of messages with one layout: reading the scroll position after each insert
// would lay the page out once per message (200 ms for a page of 50 in a busy browser).
function upsertAll(messages) {
  const scroller = $("scroller");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  let appended = false;
  for (const message of messages) {
    if (state.deleted.has(message.id)) continue;
    const known = state.messages.get(message.id);
    if (known && !known.pending && stamp(known) > stamp(message)) continue;
    state.messages.set(message.id, message);
    state.newest = Math.max(state.newest, message.id);
    appended = render(message) || appended;
  }
  if (appended && atBottom) scroller.scrollTop = scroller.scrollHeight;
}

function remove(id) {
  state.deleted.add(id);
  state.messages.delete(id);
  const item = document.querySelector(`#messages li[data-id="${id}"]`);
  if (item) item.remove();
}

// Puts a message on screen, in id order; true when it went after every other one.
function render(message) {
  const list = $("messages");
  const fresh = element(message);
  const old = list.querySelector(`li[data-id="${message.id}"]`);
  if (old) {
    if (!old.querySelector(".edit-box")) old.replaceWith(fresh); // keep a draft being edited
    return false;
  }
  // Ids grow with the log's offsets, and a group's messages share one partition: id order is
  // send order. New messages come last: look from the end.
  let next = null;
  for (let li = list.lastElementChild; li && Number(li.dataset.id) > message.id; li = li.previousElementSibling) {
    next = li;
  }
  list.insertBefore(fresh, next);
  return next === null;
}

function element(message) {
  const mine = state.me && message.user_id === state.me.user_id;
  const li = document.createElement("li");
  li.className = "msg" + (mine ? " mine" : "") + (message.pending ? " pending" : "");
  li.dataset.id = message.id;
  li.dataset.user = message.user_id;

  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = message.name;
  const time = document.createElement("time");
  time.dateTime = message.created_at;
  time.textContent = CLOCK.format(new Date(message.created_at));
  meta.append(author, time);
  if (message.edited_at) {
    const edited = document.createElement("span");
    edited.className = "edited";
    edited.textContent = "edited";
    meta.append(edited);
  }
  // Buttons only where the API would allow the change: one's own messages, with one's flags;
  // any message of the group for its owners and admins (delete only).
  const moderator = state.role === "owner" || state.role === "admin";
  const canEdit = mine && state.me.can_edit;
  const canDelete = (mine && state.me.can_delete) || moderator;
  if (!message.pending && (canEdit || canDelete)) {
    const actions = document.createElement("span");
    actions.className = "actions";
    if (canEdit) actions.append(button("Edit", "edit", () => startEdit(li, message)));
    if (canDelete) actions.append(button("Delete", "delete", () => deleteMessage(message.id)));
    meta.append(actions);
  }
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = message.message;
  li.append(meta, text);
  return li;
}

function button(label, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

// --- actions -------------------------------------------------------------------------------

async function send(text) {
  const key = crypto.randomUUID();
  const { data } = await withRetry(() => api("POST", "/send-message/", {
    user_id: state.me.user_id, group_id: state.group, message: text, client_message_id: key,
  }));
  // Shown at once; the frame (or a page) replaces it with the stored message.
  if (!state.messages.has(data.message_id)) {
    upsert({
      id: data.message_id, user_id: state.me.user_id, name: state.me.name, group_id: data.group_id,
      message: text, can_edit: state.me.can_edit, can_delete: state.me.can_delete,
      created_at: new Date().toISOString(), pending: true,
    });
  }
}

function startEdit(li, message) {
  const box = document.createElement("textarea");
  box.className = "edit-box";
  box.value = message.message;
  box.maxLength = 4096;
  const save = button("Save", "save", async () => {
    try {
      showError("");
      await withRetry(() => api("PUT", `/edit-message/${message.id}`, {
        user_id: state.me.user_id, new_text: box.value,
      }));
      const current = state.messages.get(message.id) || message;
      box.remove(); // the draft is done with
      if (current.edited_at && current.message === box.value) {
        render(current); // its frame came before the reply
      } else {
        upsert({ ...current, message: box.value, edited_at: new Date().toISOString(), pending: true });
      }
    } catch (e) {
      showError(`Cannot edit: ${e.message}`);
    }
  });
  const cancel = button("Cancel", "cancel", () => {
    box.remove();
    render(state.messages.get(message.id) || message);
  });
  const text = li.querySelector(".text");
  text.replaceWith(box);
  li.querySelector(".actions").replaceChildren(save, cancel);
  box.focus();
}

async function deleteMessage(id) {
  try {
    showError("");
    await withRetry(() => api("DELETE", `/delete-message/${id}?user_id=${state.me.user_id}`));
    remove(id);
  } catch (e) {
    showError(`Cannot delete: ${e.message}`);
  }
}

// --- history -------------------------------------------------------------------------------

async function loadNewest() {
  const { data, link } = await api("GET", `/messages/${state.group}?limit=${PAGE}&user_id=${state.me.user_id}`);
  upsertAll(data);
  state.olderUrl = link;
  historyState();
  $("scroller").scrollTop = $("scroller").scrollHeight;
  scheduleRead();
  return data;
}

async function loadOlder() {
  if (!state.olderUrl || state.loadingOlder) return;
  state.loadingOlder = true;
  historyState();
  const scroller = $("scroller");
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  try {
    const { data, link } = await api("GET", state.olderUrl);
    upsertAll(data);
    state.olderUrl = link;
    scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep the view where it was
  } catch (e) {
    showError(`Cannot load older messages: ${e.message}`);
  } finally {
    state.loadingOlder = false;
    historyState();
  }
}

function historyState() {
  $("history-state").textContent = state.loadingOlder ? "loading older messages…"
    : state.olderUrl ? "scroll up for older messages" : "the beginning of the conversation";
}

// On every (re)connection: every message newer than the last one seen, page by page. After a
// reconnection also the newest page again, for edits and deletions made while the socket was
// down, within the messages on screen.
async function catchUp(reconnected) {
  // after= takes ids from 1: with nothing seen yet, the newest page is the catch-up.
  const cursor = state.newest ? `after=${state.newest}&` : "";
  let path = `/messages/${state.group}?${cursor}limit=100&user_id=${state.me.user_id}`;
  while (path) {
    const { data, link } = await api("GET", path);
    upsertAll(data);
    path = link;
  }
  if (!reconnected) return;
  const { data } = await api("GET", `/messages/${state.group}?limit=100&user_id=${state.me.user_id}`);
  const shown = [...state.messages.keys()];
  if (!data.length || !shown.length) return;
  const from = Math.max(data[0].id, Math.min(...shown));
  const present = new Set(data.map((m) => m.id));
  for (const id of shown) {
    if (id >= from && !present.has(id) && !state.messages.get(id).pending) remove(id);
  }
  upsertAll(data.filter((m) => m.id >= from));
}

// --- live updates --------------------------------------------------------------------------

function websocketUrl() {
  let base = state.config.websocket;
  if (!base) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    base = `${scheme}//${location.host}/`;
  }
  const url = new URL(base);
  url.searchParams.set("group_id", state.group);
  if (!state.token) url.searchParams.set("user_id", state.me.user_id);
  if (state.token) url.searchParams.set("token", state.token);
  return url.toString();
}

function setConnection(name) {
  const badge = $("connection");
  badge.dataset.state = name;
  badge.textContent = name;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  if (!state.me) return;
  const reconnected = state.socket !== null;
  setConnection(reconnected ? "reconnecting" : "connecting");
  const socket = new WebSocket(websocketUrl());
  state.socket = socket;
  let opened = false;
  socket.onopen = async () => {
    opened = true;
    state.backoff = 500;
    try {
      await state.history;
      await catchUp(reconnected);
      if (state.socket === socket) setConnection("live");
      showError("");
    } catch (e) {
      showError(`Cannot catch up: ${e.message}`);
      socket.close();
    }
  };
  socket.onmessage = (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (frame.group_id !== state.group) return;
    onFrame(frame);
  };
  socket.onclose = () => {
    if (state.socket !== socket) return; // replaced on purpose
    if (state.lost === state.group) return; // removed: the group list moves the page on
    setConnection("reconnecting");
    const wait = opened ? 500 : state.backoff;
    state.backoff = Math.min(state.backoff * 2, MAX_BACKOFF_MS);
    state.reconnectTimer = setTimeout(connect, wait * (0.75 + Math.random() / 2));
  };
}

function onFrame(frame) {
  const me = state.me.user_id;
  switch (frame.event) {
    case "deleted":
      remove(frame.id);
      break;
    case "created":
    case "edited": {
      const { event: _, trace: __, ...message } = frame;
      upsert(message);
      if (message.user_id !== me) clearTyping();
      scheduleRead();
      break;
    }
    case "member_added":
    case "member_removed":
      if (frame.user_id === me && frame.event === "member_removed") state.lost = frame.group_id;
      loadMembers().catch(() => {});
      if (frame.user_id === me) loadGroups().catch(() => {});
      break;
    case "presence": {
      const member = state.members.get(frame.user_id);
      if (member) { member.online = frame.online; renderMembers(); }
      break;
    }
    case "typing":
      if (frame.user_id !== me) showTyping(frame.name);
      break;
    default:
      break; // read marks of others, and events this page does not show
  }
}

// --- groups, members, read marks, typing ---------------------------------------------------

function unreadText(n) {
  return n >= 1000 ? "999+" : String(n);
}

async function loadGroups() {
  const { data } = await api("GET", `/groups?user_id=${state.me.user_id}`);
  state.groups = data;
  const here = data.find((g) => g.group_id === state.group);
  if (here) {
    state.role = here.role;
  } else {
    // Removed from the group on screen, or left it: on to the first group that remains.
    const next = data.find((g) => g.group_id === state.me.group_id) || data[0];
    if (next) await selectGroup(next.group_id);
  }
  renderGroups();
}

function renderGroups() {
  $("groups").replaceChildren(...state.groups.map((g) => {
    const li = document.createElement("li");
    const b = button("", "group", () => selectGroup(g.group_id).catch((e) => showError(e.message)));
    b.dataset.groupId = g.group_id;
    b.setAttribute("aria-current", String(g.group_id === state.group));
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = g.name;
    b.append(name);
    if (g.unread > 0 && g.group_id !== state.group) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = unreadText(g.unread);
      b.append(badge);
    }
    li.append(b);
    return li;
  }));
}

async function selectGroup(groupId) {
  if (groupId === state.group && state.socket) return;
  // What was read in the group being left is marked before its messages go.
  clearTimeout(state.readTimer);
  if (state.group) markRead();
  state.group = groupId;
  state.lost = null;
  state.messages.clear();
  state.deleted.clear();
  state.newest = 0;
  state.olderUrl = null;
  $("messages").replaceChildren();
  clearTyping();
  const known = state.groups.find((g) => g.group_id === groupId);
  state.role = known ? known.role : null;
  $("who").textContent = `${state.me.name} · group ${groupId}`;
  renderGroups();
  const old = state.socket;
  state.socket = null;
  if (old) old.close();
  state.history = loadNewest().catch((e) => showError(`Cannot load the conversation: ${e.message}`));
  connect();
  loadMembers().catch((e) => showError(`Cannot list the members: ${e.message}`));
  await state.history;
}

async function loadMembers() {
  const group = state.group;
  const { data } = await api("GET", `/groups/${group}/members?user_id=${state.me.user_id}`);
  if (group !== state.group) return;
  state.members = new Map(data.map((m) => [m.user_id, m]));
  const mine = state.members.get(state.me.user_id);
  const role = mine ? mine.role : null;
  if (role !== state.role) {
    state.role = role;
    for (const message of state.messages.values()) render(message); // moderation buttons
  }
  renderMembers();
}

function renderMembers() {
  const me = state.me.user_id;
  const manages = state.role === "owner" || state.role === "admin";
  $("members").replaceChildren(...[...state.members.values()].map((m) => {
    const li = document.createElement("li");
    li.dataset.userId = m.user_id;
    const dot = document.createElement("span");
    dot.className = "dot" + (m.online ? " online" : "");
    dot.title = m.online ? "online" : "offline";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = m.name;
    const role = document.createElement("small");
    role.textContent = m.role;
    li.append(dot, name, role);
    if (m.user_id === me) {
      li.append(button("Leave", "remove", () => removeMember(m.user_id)));
    } else if (manages && !(state.role === "admin" && m.role === "owner")) {
      li.append(button("Remove", "remove", () => removeMember(m.user_id)));
    }
    return li;
  }));
  $("add-member").hidden = !manages;
}

async function removeMember(userId) {
  try {
    showError("");
    await withRetry(() => api("DELETE", `/groups/${state.group}/members/${userId}?user_id=${state.me.user_id}`));
  } catch (e) {
    showError(`Cannot remove: ${e.message}`);
  }
}

async function addMember(event) {
  event.preventDefault();
  const userId = Number($("member-id").value);
  try {
    showError("");
    await withRetry(() => api("POST", `/groups/${state.group}/members?user_id=${state.me.user_id}`, {
      user_id: userId, role: $("member-role").value,
    }));
    $("member-id").value = "";
  } catch (e) {
    showError(`Cannot add: ${e.message}`);
  }
}

async function createGroup(event) {
  event.preventDefault();
  try {
    showError("");
    const { data } = await withRetry(() => api("POST", "/groups", {
      user_id: state.me.user_id, name: $("group-name").value,
    }));
    $("group-name").value = "";
    state.groups.push({ group_id: data.group_id, name: data.name, role: data.role, unread: 0, last_message_id: null });
    await selectGroup(data.group_id);
  } catch (e) {
    showError(`Cannot create the group: ${e.message}`);
  }
}

// The read mark follows what is on screen while the page is visible, a moment after it.
function scheduleRead() {
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(markRead, 300);
}

async function markRead() {
  const group = state.group;
  if (!group || document.visibilityState !== "visible") return;
  let newest = 0;
  for (const m of state.messages.values()) if (!m.pending && m.id > newest) newest = m.id;
  if (newest <= (state.readSent.get(group) || 0)) return;
  state.readSent.set(group, newest);
  try {
    await api("PUT", `/groups/${group}/read`, { message_id: newest, user_id: state.me.user_id });
    const here = state.groups.find((g) => g.group_id === group);
    if (here) here.unread = 0;
  } catch (e) {
    state.readSent.delete(group); // tried again with the next message
  }
}

function typed() {
  const now = Date.now();
  const socket = state.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN || now - state.typingSentAt < TYPING_EVERY_MS) return;
  state.typingSentAt = now;
  socket.send(JSON.stringify({ action: "typing", group_id: state.group }));
}

function showTyping(name) {
  $("typing").textContent = `${name} is typing…`;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(clearTyping, TYPING_SHOWN_MS);
}

function clearTyping() {
  clearTimeout(state.typingTimer);
  $("typing").textContent = "";
}

// --- who is chatting -----------------------------------------------------------------------

// The token's claims, unverified: only to know which user the page is for. The API verifies.
function tokenUserId(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return Number(JSON.parse(atob(part))["custom:user_id"]) || null;
  } catch (e) {
    return null;
  }
}

async function showSignin() {
  $("chat").hidden = true;
  $("who").hidden = true;
  $("leave").hidden = true;
  $("signin").hidden = false;
  setConnection("offline");
  try {
    const { data } = await api("GET", "/users/");
    const list = $("users");
    list.replaceChildren(...data.map((user) => {
      const b = button("", "user", () => enter(user));
      b.dataset.userId = user.user_id;
      b.append(user.name);
      const details = document.createElement("small");
      details.textContent = `group ${user.group_id}` + (user.can_edit ? " · edits" : "") + (user.can_delete ? " · deletes" : "");
      b.append(details);
      return b;
    }));
    $("pick-user").hidden = false;
    $("token-form").hidden = true;
  } catch (e) {
    if (e.status !== 401) showError(`Cannot list users: ${e.message}`);
    $("pick-user").hidden = true;
    $("token-form").hidden = false;
  }
}

async function signInWithToken(token) {
  state.token = token;
  const userId = tokenUserId(token);
  try {
    if (!userId) throw new Error("this is not an ID token with a custom:user_id claim");
    const { data } = await api("GET", "/users/");
    const user = data.find((u) => u.user_id === userId);
    if (!user) throw new Error(`user ${userId} does not exist`);
    sessionStorage.setItem("chat.token", token);
    await enter(user);
  } catch (e) {
    state.token = null;
    sessionStorage.removeItem("chat.token");
    showError(`Cannot sign in: ${e.message}`);
  }
}

async function enter(user) {
  showError("");
  state.me = user;
  sessionStorage.setItem("chat.user", String(user.user_id));
  state.group = null;
  state.groups = [];
  $("signin").hidden = true;
  $("chat").hidden = false;
  $("who").hidden = false;
  $("leave").hidden = false;
  // The socket's handshake and the first page overlap; the socket's catch-up waits for the page.
  const opened = selectGroup(user.group_id);
  loadGroups().catch((e) => showError(`Cannot list the groups: ${e.message}`));
  $("text").focus();
  await opened;
}

function leave() {
  const socket = state.socket;
  state.socket = null;
  state.me = null;
  state.group = null;
  clearTimeout(state.reconnectTimer);
  if (socket) socket.close();
  state.token = null;
  sessionStorage.removeItem("chat.token");
  sessionStorage.removeItem("chat.user");
  showSignin();
}

// --- start ---------------------------------------------------------------------------------

async function start() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) Object.assign(state.config, await response.json());
  } catch (e) { /* none: the API is this page's own origin */ }

  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("text");
    const text = box.value;
    if (!text.trim()) return;
    $("send").disabled = true;
    try {
      showError("");
      await send(text);
      box.value = "";
    } catch (e) {
      showError(`Not sent: ${e.message}`);
    } finally {
      $("send").disabled = false;
      box.focus();
    }
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("scroller").addEventListener("scroll", () => {
    if ($("scroller").scrollTop < 60) loadOlder();
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signInWithToken($("token").value.trim());
  });
  $("leave").addEventListener("click", leave);
  $("new-group").addEventListener("submit", createGroup);
  $("add-member").addEventListener("submit", addMember);
  $("text").addEventListener("input", typed);
  document.addEventListener("visibilitychange", () => { if (state.me) scheduleRead(); });
  // The socket follows one group; the others' unread counts are read now and then.
  setInterval(() => {
    if (state.me && document.visibilityState === "visible") loadGroups().catch(() => {});
  }, GROUPS_EVERY_MS);
  window.addEventListener("online", () => { if (state.me) connect(); });

  if (state.token) {
    await signInWithToken(state.token);
    if (state.me) return;
  }
  const remembered = Number(sessionStorage.getItem("chat.user"));
  if (remembered) {
    try {
      const { data } = await api("GET", "/users/");
      const user = data.find((u) => u.user_id === remembered);
      if (user) return enter(user);
    } catch (e) { /* choose again */ }
  }
  showSignin();
}

start();
