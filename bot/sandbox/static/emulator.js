// The chat emulator: talks only to the Cliq stand-in that serves it (same origin).
// POST /_standin/send signs and forwards events to the bot; GET /_standin/messages is polled
// for what the bot posts later ("Saved ...", "Connected as ...").
"use strict";

(function () {
  const POLL_MS = 1000;
  const state = { users: [], current: null, transcripts: new Map(), seen: 0, command: "connection" };
  const $ = (id) => document.getElementById(id);

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children || []) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function userById(id) {
    return state.users.find((u) => u.id === id);
  }

  function transcript(userId) {
    if (!state.transcripts.has(userId)) state.transcripts.set(userId, []);
    return state.transcripts.get(userId);
  }

  function add(userId, entry) {
    transcript(userId).push(entry);
    if (state.current && state.current.id === userId) {
      renderEntry(entry);
    }
  }

  function renderAll() {
    const list = $("transcript");
    list.replaceChildren();
    for (const entry of transcript(state.current.id)) renderEntry(entry);
  }

  function renderEntry(entry) {
    const list = $("transcript");
    const bubble = entry.from === "me" ? renderMine(entry) : renderBot(entry.message || {});
    const item = el("li", { className: entry.from === "me" ? "me" : entry.error ? "bot error" : "bot" }, [bubble]);
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }

  function renderMine(entry) {
    const bubble = el("div", { className: "bubble" }, [
      el("span", { className: "who" }, [state.current ? state.current.name : "me"]),
    ]);
    if (entry.text) bubble.append(entry.text);
    for (const a of entry.attachments || []) {
      bubble.append(el("span", { className: "attachment" }, ["Attachment: " + a.name]));
    }
    return bubble;
  }

  function renderBot(message) {
    const bubble = el("div", { className: "bubble" }, [el("span", { className: "who" }, ["Bot"])]);
    if (message.card && message.card.title) {
      bubble.append(el("strong", { className: "card-title" }, [message.card.title]));
    }
    if (message.text) bubble.append(el("div", { className: "text" }, formatted(message.text)));
    for (const slide of message.slides || []) bubble.append(renderSlide(slide));
    const buttons = message.buttons || [];
    if (buttons.length) {
      const row = el("div", { className: "buttons" });
      for (const b of buttons) row.append(renderButton(b));
      bubble.append(row);
    }
    return bubble;
  }

  // Cliq's light markup: *bold* and `code`; everything else stays plain text (no innerHTML).
  function formatted(text) {
    const parts = [];
    const pattern = /\*([^*\n]+)\*|`([^`\n]+)`/g;
    let last = 0;
    for (const m of text.matchAll(pattern)) {
      if (m.index > last) parts.push(text.slice(last, m.index));
      parts.push(m[1] !== undefined ? el("strong", {}, [m[1]]) : el("code", {}, [m[2]]));
      last = m.index + m[0].length;
    }
    if (last < text.length) parts.push(text.slice(last));
    return parts;
  }

  function renderSlide(slide) {
    const box = el("div", { className: "slide" });
    if (slide.title) box.append(el("span", { className: "slide-title" }, [slide.title]));
    const data = slide.data;
    if (slide.type === "table" && data && Array.isArray(data.headers)) {
      const head = el("tr", {}, data.headers.map((h) => el("th", { scope: "col" }, [h])));
      const rows = (data.rows || []).map((r) => el("tr", {}, data.headers.map((h) => el("td", {}, [r[h] ?? ""]))));
      const table = el("table", {}, [el("thead", {}, [head]), el("tbody", {}, rows)]);
      if (slide.title) table.setAttribute("aria-label", slide.title);
      box.append(table);
    } else if (slide.type === "list" && Array.isArray(data)) {
      box.append(el("ul", {}, data.map((item) => el("li", {}, [item]))));
    } else if (slide.type === "label" && Array.isArray(data)) {
      const dl = el("dl");
      for (const pair of data) {
        for (const [k, v] of Object.entries(pair)) dl.append(el("dt", {}, [k]), el("dd", {}, [v]));
      }
      box.append(dl);
    } else if (data !== undefined) {
      box.append(el("p", {}, [typeof data === "string" ? data : JSON.stringify(data)]));
    }
    return box;
  }

  function renderButton(button) {
    const action = button.action || {};
    const data = action.data || {};
    const label = button.label || "Button";
    if (action.type === "open.url" && data.web) {
      // A link, so the consent page opens in a new tab as it would from Cliq.
      return el("a", { className: "btn", href: data.web, target: "_blank", rel: "noopener" }, [label]);
    }
    const btn = el("button", { type: "button", className: button.type === "-" ? "btn secondary" : "btn" }, [label]);
    if (action.type === "invoke.function") {
      btn.addEventListener("click", () => {
        add(state.current.id, { from: "me", text: "[" + label + "]" });
        // Cliq sends back only the button's key (reference/cliq.md).
        send({ kind: "button", data: { key: String(button.key || ""), label: label } });
      });
    } else {
      btn.disabled = true;
      btn.title = "This emulator does not handle " + (action.type || "this action");
    }
    return btn;
  }

  function status(text) {
    $("status").textContent = text;
  }

  async function send(event) {
    const user = state.current;
    const body = Object.assign({ user_id: user.id, text: "", attachments: [], data: {} }, event);
    try {
      const resp = await fetch("/_standin/send", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const reply = await resp.json();
      if (!resp.ok) {
        add(user.id, { from: "bot", error: true, message: { text: reply.message || "The stand-in refused the event." } });
        return;
      }
      const answer = reply.body || {};
      if (answer.output) {
        add(user.id, { from: "bot", message: answer.output });
      } else {
        add(user.id, { from: "bot", error: true, message: { text: "HTTP " + reply.status + ": " + (answer.error || JSON.stringify(answer)) } });
      }
    } catch (err) {
      add(user.id, { from: "bot", error: true, message: { text: "Could not reach the stand-in: " + err } });
    }
  }

  async function submitText(ev) {
    ev.preventDefault();
    const input = $("text");
    const text = input.value.trim();
    if (!text || !state.current) return;
    input.value = "";
    add(state.current.id, { from: "me", text });
    const prefix = "/" + state.command;
    if (text === prefix || text.startsWith(prefix + " ")) {
      await send({ kind: "command", text: text.slice(prefix.length).trim() });
    } else {
      await send({ kind: "message", text });
    }
  }

  async function attachFiles() {
    const input = $("file");
    const files = Array.from(input.files || []);
    if (!files.length || !state.current) return;
    const comment = $("text").value.trim();
    $("text").value = "";
    status("Uploading " + files.length + " file(s) to the stand-in…");
    const attachments = [];
    try {
      for (const file of files) {
        const form = new FormData();
        form.append("file", file, file.name);
        const resp = await fetch("/_standin/files", { method: "POST", body: form });
        if (!resp.ok) throw new Error("upload of " + file.name + " failed: HTTP " + resp.status);
        attachments.push(await resp.json());
      }
    } catch (err) {
      status(String(err));
      return;
    } finally {
      input.value = "";
    }
    status("");
    add(state.current.id, { from: "me", text: comment, attachments });
    await send({ kind: "message", text: comment, attachments });
  }

  async function poll() {
    try {
      const resp = await fetch("/_standin/messages", { cache: "no-store" });
      if (resp.ok) {
        const messages = await resp.json();
        for (const posted of messages.slice(state.seen)) {
          for (const id of posted.userids || []) add(id, { from: "bot", message: posted.payload || {} });
        }
        state.seen = Math.max(state.seen, messages.length);
      }
    } catch (err) {
      status("Lost the stand-in (" + err + "); retrying…");
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function choose(id) {
    const first = !state.transcripts.has(id);
    state.current = userById(id);
    const u = state.current;
    $("user-info").textContent = u.email + (u.admin ? " · admin" : "");
    renderAll();
    if (first) send({ kind: "welcome" });
  }

  async function start() {
    const resp = await fetch("/_standin/config", { cache: "no-store" });
    const config = await resp.json();
    state.users = config.users;
    state.command = config.command;
    $("bot-name").textContent = config.bot_name;
    for (const u of config.users) {
      $("user").append(el("option", { value: u.id }, [u.name + (u.admin ? " (admin)" : "")]));
    }
    for (const link of config.links) {
      $("links").append(el("li", {}, [el("a", { href: link.url, target: "_blank", rel: "noopener" }, [link.label])]));
    }
    if (!config.connected || !state.users.length) {
      status("No bot is connected to this stand-in.");
      return;
    }
    // Start with the first non-admin user; the admin is one choice away.
    const initial = new URLSearchParams(location.search).get("user");
    const pick = userById(initial) || state.users.find((u) => !u.admin) || state.users[0];
    $("user").value = pick.id;
    // Messages posted before the page opened are history, not news.
    const before = await fetch("/_standin/messages", { cache: "no-store" });
    if (before.ok) {
      for (const posted of await before.json()) {
        for (const id of posted.userids || []) transcript(id).push({ from: "bot", message: posted.payload || {} });
        state.seen += 1;
      }
    }
    $("user").addEventListener("change", (ev) => choose(ev.target.value));
    $("composer").addEventListener("submit", submitText);
    $("file").addEventListener("change", attachFiles);
    choose(pick.id);
    setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
