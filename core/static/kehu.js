/* Kehu's shell script: small and dependency-free (htmx, when present, is used as it is).
   - htmx requests carry the session's CSRF token (X-CSRF-Token, from <meta name="csrf-token">);
   - the phone menu (a checkbox, so it also works without JavaScript) closes with Escape, a tap
     outside the top bar or a choice in it;
   - a table that is not inside a scrolling container gets one (.table-wrap), so wide tables
     scroll sideways inside the page instead of widening it; also for content htmx swaps in. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) event.detail.headers["X-CSRF-Token"] = token;
  });

  function setupMenu() {
    var toggle = document.getElementById("nav-toggle");
    if (!toggle) return;
    var bar = toggle.closest(".topbar");
    var sync = function () { toggle.setAttribute("aria-expanded", toggle.checked ? "true" : "false"); };
    var close = function () { if (toggle.checked) { toggle.checked = false; sync(); } };
    toggle.setAttribute("aria-controls", "main-nav");
    toggle.addEventListener("change", sync);
    sync();
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && toggle.checked) { close(); toggle.focus(); }
    });
    document.addEventListener("click", function (event) {
      if (bar && !bar.contains(event.target)) close();
    });
    var nav = document.getElementById("main-nav");
    if (nav) nav.addEventListener("click", function (event) { if (event.target.closest("a")) close(); });
    // Back to a page from the browser's cache: do not show it with the menu still open.
    window.addEventListener("pageshow", function (event) { if (event.persisted) close(); });
  }

  var SCROLLING = { auto: true, scroll: true };

  function wrapTables(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var tables = Array.prototype.slice.call(scope.querySelectorAll(".content table"));
    if (scope.matches && scope.matches(".content table")) tables.push(scope);
    tables.forEach(function (table) {
      for (var el = table.parentElement; el && !el.classList.contains("content"); el = el.parentElement) {
        if (el.tagName === "TABLE" || SCROLLING[getComputedStyle(el).overflowX]) return;
      }
      var wrap = document.createElement("div");
      wrap.className = "table-wrap";
      table.parentNode.insertBefore(wrap, table);
      wrap.appendChild(table);
    });
  }

  function start() {
    setupMenu();
    wrapTables(document);
    document.addEventListener("htmx:load", function (event) { wrapTables(event.target); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
