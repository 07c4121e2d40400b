// servicebus dashboard: swaps in the live part of the page pushed over a WebSocket.
// No build step, no dependencies; everything it loads comes from the dashboard itself.
(function () {
  "use strict";
  var body = document.body;
  var live = document.getElementById("live");
  var status = document.getElementById("status");
  var conn = document.getElementById("conn");
  if (!live || !body.dataset.ws || !body.dataset.view || !window.WebSocket) {
    return;
  }
  var subscription = JSON.stringify({
    view: body.dataset.view,
    args: JSON.parse(body.dataset.args || "{}"),
  });
  var retryDelay = 1000;
  var lastMessage = 0;
  var socket = null;

  function showProblem(text) {
    if (text) {
      status.textContent = text;
      status.hidden = false;
      live.classList.add("stale");
    } else {
      status.hidden = true;
      status.textContent = "";
      live.classList.remove("stale");
    }
  }

  function setConnection(state, title) {
    conn.textContent = state;
    conn.className = "conn " + state.replace(/[^a-z]/g, "");
    conn.title = title || "";
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + body.dataset.ws);
    socket.onopen = function () {
      retryDelay = 1000;
      setConnection("live", "figures are pushed every second or two");
      socket.send(subscription);
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      lastMessage = Date.now();
      if (message.html !== null && message.html !== undefined) {
        live.innerHTML = message.html;
      }
      showProblem(message.ok ? "" : message.error);
      if (message.at) {
        body.dataset.updated = String(message.at);
        setConnection("live", "updated " + new Date(message.at * 1000).toLocaleTimeString());
      }
    };
    socket.onclose = function () {
      setConnection("offline", "reconnecting in " + retryDelay / 1000 + " s");
      showProblem("Live updates are disconnected from the dashboard; reconnecting…");
      window.setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    };
  }

  // A socket that stays open but goes quiet (a stalled proxy) is closed and reopened.
  window.setInterval(function () {
    if (lastMessage && Date.now() - lastMessage > 15000) {
      lastMessage = 0;
      showProblem("No update for 15 s; reconnecting…");
      if (socket) {
        socket.close();
      }
    }
  }, 5000);

  connect();
})();
