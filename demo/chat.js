'use strict';
// The demo page: one WebSocket to /chat on this page's host (wsgw-chat, or the Python or
// Node chat examples, which speak the same JSON), rooms, a name, messages, the
// connection's state with automatic reconnects, and the gateway's figures from /metrics
// (served on this same origin when the gateway runs with --static and --admin).
// Everything the server sends is shown with textContent: no markup from anyone.
(function () {
  const $ = (id) => document.getElementById(id);
  const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/chat`;
  const store = window.localStorage;

  const state = {
    ws: null,
    open: false,
    retry: 0,         // reconnects since the last successful open
    rooms: new Map(), // room -> { name, members, messages: [] }
    current: null,
  };

  // ---- rendering ------------------------------------------------------------------

  function setStatus(kind, text) {
    const s = $('status');
    s.className = `status ${kind}`;
    s.textContent = text;
  }

  function time(ms) {
    const d = ms ? new Date(ms) : new Date();
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function renderRooms() {
    const ul = $('rooms');
    ul.replaceChildren();
    for (const [room, r] of state.rooms) {
      const li = document.createElement('li');
      li.className = room === state.current ? 'current' : '';
      li.dataset.room = room;
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'room';
      b.textContent = room;
      b.onclick = () => select(room);
      const n = document.createElement('span');
      n.className = 'members';
      n.textContent = r.members == null ? '' : `${r.members} here`;
      const x = document.createElement('button');
      x.type = 'button';
      x.className = 'leave';
      x.title = `leave ${room}`;
      x.textContent = '×';
      x.onclick = () => leave(room);
      li.append(b, n, x);
      ul.append(li);
    }
  }

  function line(m) {
    const li = document.createElement('li');
    if (m.kind === 'message') {
      li.className = m.self ? 'msg self' : 'msg';
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = m.name;
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = m.text;
      const t = document.createElement('time');
      t.textContent = time(m.time);
      li.append(t, who, text);
    } else {
      li.className = 'notice';
      li.textContent = `${time(m.time)}  ${m.text}`;
    }
    return li;
  }

  function renderMessages() {
    const ol = $('messages');
    const r = state.rooms.get(state.current);
    ol.replaceChildren(...(r ? r.messages.map(line) : []));
    ol.scrollTop = ol.scrollHeight;
    $('room-title').textContent = r ? `# ${state.current}` : 'join a room to chat';
    const can = !!r && state.open;
    $('text').disabled = !can;
    $('send').disabled = !can;
  }

  function add(room, m) {
    const r = state.rooms.get(room);
    if (!r) return;
    r.messages.push(m);
    if (r.messages.length > 500) r.messages.shift();
    if (room === state.current) {
      const ol = $('messages');
      ol.append(line(m));
      ol.scrollTop = ol.scrollHeight;
    }
  }

  function select(room) {
    state.current = room;
    renderRooms();
    renderMessages();
  }

  function save() {
    store.setItem('wsgw-chat-rooms', JSON.stringify([...state.rooms.keys()]));
    store.setItem('wsgw-chat-name', $('name').value);
  }

  // ---- the connection -------------------------------------------------------------

  function send(msg) {
    if (state.open) state.ws.send(JSON.stringify(msg));
  }

  function joinAll(again) {
    for (const [room, r] of state.rooms) send({ type: 'join', room, name: r.name, again });
  }

  function onServer(m) {
    switch (m.type) {
      case 'message':
        add(m.room, { kind: 'message', name: m.name, text: m.text, time: m.time, self: !!m.self });
        break;
      case 'joined':
      case 'left':
        add(m.room, { kind: 'notice', text: `${m.name} ${m.type} ${m.room}`, time: m.time });
        break;
      case 'count': {
        const r = state.rooms.get(m.room);
        if (r) {
          r.members = m.members;
          renderRooms();
        }
        break;
      }
      case 'resync':
        // The chat worker was replaced: the connection and its rooms stayed, the worker
        // forgot our names. Tell it again, quietly.
        joinAll(true);
        if (state.current) add(state.current, { kind: 'notice', text: 'chat worker restarted; still connected' });
        break;
      case 'error':
        if (state.current) add(state.current, { kind: 'notice', text: `error: ${m.error}` });
        break;
    }
  }

  function connect() {
    setStatus(state.retry ? 'reconnecting' : 'connecting', state.retry ? 'reconnecting…' : 'connecting…');
    const ws = new WebSocket(WS_URL);
    state.ws = ws;
    ws.onopen = () => {
      state.open = true;
      state.retry = 0;
      setStatus('open', 'connected');
      joinAll(false); // a new connection: its rooms are joined again
      for (const room of state.rooms.keys()) send({ type: 'count', room });
      renderMessages();
    };
    ws.onmessage = (e) => {
      let m;
      try {
        m = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (m && typeof m === 'object') onServer(m);
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.open = false;
      renderMessages();
      // Backoff with jitter: 0.5 s, 1 s, 2 s, ... at most 8 s.
      const delay = Math.min(8000, 500 * 2 ** state.retry) * (0.75 + Math.random() / 2);
      state.retry++;
      setStatus('closed', `disconnected; retrying in ${Math.ceil(delay / 1000)} s`);
      setTimeout(connect, delay);
    };
  }

  function join(room, name) {
    if (!state.rooms.has(room)) state.rooms.set(room, { name, members: null, messages: [] });
    else state.rooms.get(room).name = name;
    send({ type: 'join', room, name });
    save();
    select(room);
  }

  function leave(room) {
    send({ type: 'leave', room });
    state.rooms.delete(room);
    if (state.current === room) state.current = state.rooms.keys().next().value || null;
    save();
    renderRooms();
    renderMessages();
  }

  // ---- live figures -----------------------------------------------------------------

  function metric(text, name) {
    const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  }

  async function figures() {
    let text = null;
    try {
      const r = await fetch('/metrics', { cache: 'no-store' });
      if (r.ok) text = await r.text();
    } catch (e) {
      text = null;
    }
    const on = text !== null && metric(text, 'wsgw_connections') !== null;
    $('figures').hidden = !on;
    $('figures-off').hidden = on;
    if (on) {
      const fmt = (v) => (v === null ? '–' : v.toLocaleString());
      $('fig-conns').textContent = fmt(metric(text, 'wsgw_connections'));
      $('fig-in').textContent = fmt(metric(text, 'wsgw_messages_in_total'));
      $('fig-out').textContent = fmt(metric(text, 'wsgw_delivered_total'));
      $('fig-workers').textContent = fmt(metric(text, 'wsgw_workers'));
    }
    setTimeout(figures, on ? 2000 : 10000);
  }

  // ---- start ------------------------------------------------------------------------

  $('name').value = store.getItem('wsgw-chat-name') || '';
  try {
    for (const room of JSON.parse(store.getItem('wsgw-chat-rooms') || '[]'))
      if (typeof room === 'string' && room) state.rooms.set(room, { name: $('name').value, members: null, messages: [] });
  } catch (e) {
    store.removeItem('wsgw-chat-rooms');
  }
  if (state.rooms.size && !$('name').value) state.rooms.clear();
  state.current = state.rooms.keys().next().value || null;
  $('join-form').onsubmit = (e) => {
    e.preventDefault();
    const name = $('name').value.trim(), room = $('room').value.trim();
    if (name && room) join(room, name);
  };
  $('say-form').onsubmit = (e) => {
    e.preventDefault();
    const text = $('text').value;
    if (!text.trim() || !state.current) return;
    send({ type: 'say', room: state.current, text });
    $('text').value = '';
  };
  renderRooms();
  renderMessages();
  connect();
  figures();
}());
