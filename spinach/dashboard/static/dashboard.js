// The dashboard's live updates: every few seconds the page's <main> is fetched again
// (?partial=1) and the parsed nodes replace the current ones. Job data only ever arrives
// as server-escaped HTML parsed by DOMParser (whose scripts never run): no innerHTML.
(function () {
  "use strict";
  var interval = (parseFloat(document.body.dataset.poll) || 2) * 1000;
  var banner = document.getElementById("outage");

  function setOutage(down) {
    if (banner) banner.hidden = !down;
  }

  function schedule() {
    window.setTimeout(refresh, interval);
  }

  function swapMain(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
    var current = document.querySelector("main");
    if (fresh && current) current.replaceWith(document.importNode(fresh, true));
  }

  function refresh() {
    var main = document.querySelector("main");
    if (!main || main.dataset.live !== "on" || document.hidden) return schedule();
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    fetch(url.toString(), { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        setOutage(response.status === 503);
        if (!response.ok) return null;
        return response.text();
      })
      .then(function (html) {
        if (html !== null) swapMain(html);
      })
      .catch(function () {
        setOutage(true);
      })
      .then(schedule);
  }

  schedule();
})();
