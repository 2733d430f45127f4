/* knowdo workspace: draw the Vega-Lite charts and follow background jobs. No framework, no build step. */
(function () {
  "use strict";

  function drawCharts() {
    if (typeof window.vegaEmbed !== "function") { return; }
    var themeNode = document.getElementById("chart-theme");
    var theme = themeNode ? JSON.parse(themeNode.textContent) : {};
    var options = { renderer: "svg", config: theme, ast: true,
                    actions: { export: true, source: false, compiled: false, editor: false } };
    Array.prototype.forEach.call(document.querySelectorAll(".chart[data-spec]"), function (element) {
      var node = document.getElementById(element.getAttribute("data-spec"));
      if (!node) { return; }
      window.vegaEmbed(element, JSON.parse(node.textContent), options).then(function () {
        element.setAttribute("data-rendered", "true");
      }).catch(function (error) {
        element.setAttribute("data-rendered", "error");
        element.textContent = "This chart could not be drawn (" + error.message + "). The table shows its figures.";
      });
    });
  }

  function followJob(box) {
    var url = box.getAttribute("data-job-url");
    var bar = box.querySelector("progress");
    var status = box.querySelector(".job-status");
    var message = box.querySelector(".job-message");
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) {
          if (!job) { return; }
          if (bar) { bar.value = job.progress; bar.textContent = Math.round(job.progress * 100) + "%"; }
          if (status) { status.textContent = job.status; }
          if (message) { message.textContent = job.status === "failed" ? (job.error || "failed") : job.message; }
          box.setAttribute("data-job-status", job.status);
          if (job.status === "queued" || job.status === "running") {
            window.setTimeout(poll, 1500);
          } else {
            // The page shows the job's outcome (new evidence, the scenario result) once reloaded.
            window.setTimeout(function () { window.location.reload(); }, 400);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    Array.prototype.forEach.call(document.querySelectorAll(".job[data-job-url]"), function (box) {
      var state = box.getAttribute("data-job-status");
      if (state === "queued" || state === "running") { followJob(box); }
    });
  });
})();
