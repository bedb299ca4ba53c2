// The dashboard: one page, a view per hash route (#/, #/exams, #/exams/N,
// #/students, #/students/ID, #/quarantine), everything read from this
// service's JSON API. A view is live through GET /events when the service
// has it (its OpenAPI document lists it), and polls the API otherwise or
// while the stream is down.

/* global uPlot */

const main = document.getElementById("main");
const liveStatus = document.getElementById("live");

/** Builds an element; strings become text nodes, never markup. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return element;
}

const integer = (n) => n === null || n === undefined ? "–" : n.toLocaleString("en-US");
const score = (x) => x === null || x === undefined ? "–" : x.toFixed(4);
const time = (date) => date.toLocaleTimeString("en-GB", { hour12: false });

/** GET a JSON body; null for a 404. */
async function getJson(path, signal) {
  const response = await fetch(path, { signal, headers: { Accept: "application/json" } });
  if (response.status === 404) {
    await response.body?.cancel();
    return null;
  }
  if (!response.ok) {
    let detail = "";
    try {
      detail = (await response.json()).detail ?? "";
    } catch { /* not a problem body */ }
    throw new Error(`${path} answered ${response.status} ${detail}`.trim());
  }
  return response.json();
}

let hasEventStream;
/** Whether this service has GET /events: read once from its OpenAPI document. */
function eventStreamAvailable() {
  hasEventStream ??= getJson("/openapi.json")
    .then((document) => Boolean(document?.paths?.["/events"]))
    .catch(() => false);
  return hasEventStream;
}

/**
 * Keeps a view current: calls `refresh` now, then whenever `events` (a
 * /events URL) sends something, at most once a second; without a stream, or
 * while it is down, every `everyMs`. Stops when `signal` aborts. Returns a
 * function that refreshes at once.
 */
function keepCurrent({ refresh, events, everyMs, signal }) {
  let running = false;
  let again = false;
  let timer;
  let lastRun = 0;
  let streaming = false;
  const describe = (error) => {
    const how = streaming ? "live through /events" : `polling every ${everyMs / 1000} s`;
    liveStatus.textContent = error
      ? `Update failed at ${time(new Date())} (${error.message}); retrying, ${how}.`
      : `Updated ${time(new Date())}, ${how}.`;
    liveStatus.classList.toggle("error", Boolean(error));
  };
  const run = async () => {
    if (signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    lastRun = performance.now();
    try {
      await refresh(signal);
      if (!signal.aborted) describe(null);
    } catch (error) {
      if (!signal.aborted) describe(error);
    } finally {
      running = false;
      if (!signal.aborted) {
        if (again) {
          again = false;
          schedule(0);
        } else {
          // A stream that works still gets a slow poll, for what it does not carry.
          timer = setTimeout(run, streaming ? Math.max(everyMs, 30_000) : everyMs);
        }
      }
    }
  };
  const schedule = (ms) => {
    clearTimeout(timer);
    timer = setTimeout(run, Math.max(ms, 1000 - (performance.now() - lastRun)));
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  run();
  if (events) stream(events);
  return run;

  function stream(events) {
    eventStreamAvailable().then((available) => {
      if (!available || signal.aborted) return;
      const source = new EventSource(events);
      signal.addEventListener("abort", () => source.close());
      const changed = () => schedule(0);
      for (const type of ["result", "live", "reset"]) source.addEventListener(type, changed);
      source.addEventListener("open", () => {
        streaming = true;
        changed();
      });
      source.addEventListener("error", () => {
        streaming = false;
        // Closed for good (an answer that is not a stream): poll from now on.
        if (source.readyState === EventSource.CLOSED) source.close();
        schedule(0);
      });
    });
  }
}

/**
 * A uPlot chart in `container` that follows its width. `describe(data)`
 * gives the text alternative of the data, for those who cannot see it.
 */
function chart(container, { label, height = 220, describe, ...options }, signal) {
  const figure = h("figure", { class: "chart", role: "group", "aria-label": label });
  const caption = h("figcaption");
  container.append(figure);
  let plot;
  let pending;
  const width = () => Math.max(figure.clientWidth, 240);
  return {
    setData(data) {
      caption.textContent = describe(data);
      if (!plot) {
        plot = new uPlot({ ...options, width: width(), height }, data, figure);
        plot.root.setAttribute("aria-hidden", "true");
        figure.append(caption);
        const resize = new ResizeObserver(() => {
          cancelAnimationFrame(pending);
          pending = requestAnimationFrame(() => plot.setSize({ width: width(), height }));
        });
        resize.observe(figure);
        signal.addEventListener("abort", () => {
          resize.disconnect();
          plot.destroy();
        });
      } else {
        plot.setData(data);
      }
    },
  };
}

function cards(entries) {
  return h(
    "dl",
    { class: "cards" },
    entries.map(([id, term, value]) => h("div", {}, h("dt", {}, term), h("dd", { id }, value))),
  );
}

function table(caption, headings, rows, { id } = {}) {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { id },
      h("caption", {}, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headings.map(([text, numeric]) =>
            h("th", { scope: "col", class: numeric ? "num" : undefined }, text)
          ),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((cells) =>
          h(
            "tr",
            {},
            cells.map((cell, i) => h("td", { class: headings[i][1] ? "num" : undefined }, cell)),
          )
        ),
      ),
    ),
  );
}

const studentLink = (studentId) =>
  h("a", { href: `#/students/${encodeURIComponent(studentId)}` }, studentId);
const examLink = (exam) => h("a", { href: `#/exams/${exam}` }, String(exam));

/** Replaces the children of the element with id `id`, when it is on the page. */
function fill(id, ...children) {
  document.getElementById(id)?.replaceChildren(...children);
}

// The service's last minutes, kept across views: [time s, events/s, lag ms].
const HISTORY_SECONDS = 300;
const history = { at: [], rate: [], lag: [], last: null };

function record(stats) {
  const now = Date.now() / 1000;
  const applied = stats.ingest?.applied ?? null;
  const previous = history.last;
  history.last = { now, applied };
  if (!previous || applied === null || previous.applied === null) return;
  history.at.push(now);
  history.rate.push(Math.max(0, (applied - previous.applied) / (now - previous.now)));
  history.lag.push(stats.ingest.lagMs);
  while (history.at.length && history.at[0] < now - HISTORY_SECONDS) {
    for (const series of [history.at, history.rate, history.lag]) series.shift();
  }
}

function serviceView(signal) {
  const rateChart = h("div");
  main.replaceChildren(
    h("h2", {}, "Service"),
    cards([
      ["stat-role", "Role", "–"],
      ["stat-state", "Ingest state", "–"],
      ["stat-students", "Students", "–"],
      ["stat-exams", "Exams", "–"],
      ["stat-results", "Results", "–"],
      ["stat-received", "Events received", "–"],
      ["stat-applied", "Events applied", "–"],
      ["stat-rejected", "Events rejected", "–"],
      ["stat-lag", "Lag p99 (ms)", "–"],
      ["stat-rate", "Events/s", "–"],
    ]),
    h("h2", {}, "Events per second and lag, last 5 minutes"),
    rateChart,
    h("h2", {}, "Quarantined events by reason"),
    h("div", { id: "quarantine-reasons" }),
  );
  const plot = chart(rateChart, {
    label: "Events applied per second and ingest lag over the last minutes",
    scales: { x: { time: true }, rate: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    axes: [
      {},
      { scale: "rate", label: "events/s" },
      { scale: "ms", side: 1, label: "lag ms", grid: { show: false } },
    ],
    series: [
      { label: "time" },
      { label: "events/s (solid)", scale: "rate", stroke: "#0550ae", width: 2 },
      { label: "lag p99 ms (dashed)", scale: "ms", stroke: "#953800", width: 2, dash: [6, 4] },
    ],
    describe: ([at, rate, lag]) =>
      at.length
        ? `Over ${Math.round(at.at(-1) - at[0])} s: events/s from ${
          Math.round(Math.min(...rate))
        } to ${Math.round(Math.max(...rate))}, now ${Math.round(rate.at(-1))}; lag now ${
          lag.at(-1) === null ? "unknown" : `${Math.round(lag.at(-1))} ms`
        }.`
        : "Collecting: the chart starts after two readings.",
  }, signal);
  keepCurrent({
    everyMs: 2000,
    signal,
    async refresh(signal) {
      const stats = await getJson("/stats", signal);
      record(stats);
      const ingest = stats.ingest;
      fill("stat-role", ingest?.role ?? "none");
      fill("stat-state", ingest?.state ?? "none");
      fill("stat-students", integer(stats.students));
      fill("stat-exams", integer(stats.exams));
      fill("stat-results", integer(stats.results));
      fill("stat-received", integer(ingest?.received));
      fill("stat-applied", integer(ingest?.applied));
      fill("stat-rejected", integer(ingest?.rejected));
      fill("stat-lag", ingest?.lagMs === null || !ingest ? "–" : String(Math.round(ingest.lagMs)));
      fill("stat-rate", history.rate.length ? String(Math.round(history.rate.at(-1))) : "–");
      plot.setData([history.at, history.rate, history.lag]);
      const reasons = Object.entries(stats.quarantined ?? {});
      const total = reasons.reduce((n, [, count]) => n + count, 0);
      fill(
        "quarantine-reasons",
        stats.quarantined === null || stats.quarantined === undefined
          ? h("p", {}, "Unknown while the database does not answer.")
          : table(
            `${integer(total)} in all; the events are in the Quarantine view.`,
            [["Reason"], ["Events", true]],
            [...reasons.map(([reason, count]) => [reason, integer(count)]), [
              h("strong", {}, "total"),
              h("strong", {}, integer(total)),
            ]],
            { id: "reasons" },
          ),
      );
    },
  });
}

/** A paginated list kept current: `path` (with a query) is its first page. */
function pager(container, { path, render, signal, everyMs, events }) {
  const load = (after, signal) =>
    getJson(after === undefined ? path : `${path}&after=${encodeURIComponent(after)}`, signal);
  const stack = [undefined];
  let page;
  const body = h("div");
  const move = (change) => () => {
    change();
    refresh();
  };
  const previous = h(
    "button",
    { type: "button", onclick: move(() => stack.pop()) },
    "Previous page",
  );
  const next = h(
    "button",
    { type: "button", onclick: move(() => stack.push(page.next)) },
    "Next page",
  );
  previous.disabled = next.disabled = true;
  container.append(body, h("div", { class: "pager" }, previous, next));
  const refresh = keepCurrent({
    everyMs,
    events,
    signal,
    async refresh(signal) {
      page = await load(stack.at(-1), signal);
      body.replaceChildren(render(page));
      previous.disabled = stack.length === 1;
      next.disabled = page.next === null;
    },
  });
}

function examsView(signal) {
  main.replaceChildren(h("h2", {}, "Exams"));
  pager(main, {
    everyMs: 3000,
    signal,
    path: "/exams?limit=50",
    render: (page) =>
      table(
        "By exam number; counts and averages cover every result.",
        [["Exam"], ["Results", true], ["Average", true]],
        page.exams.map((e) => [examLink(e.exam), integer(e.count), score(e.average)]),
        { id: "exams" },
      ),
  });
}

const BINS = 20;

function examView(exam, signal) {
  const histogram = h("div");
  main.replaceChildren(
    h("h2", {}, `Exam ${exam}`),
    cards([["exam-count", "Results", "–"], ["exam-average", "Average", "–"]]),
    h("h2", {}, "Score distribution"),
    histogram,
    h("details", {}, h("summary", {}, "Distribution as a table"), h("div", { id: "bins" })),
    h("h2", {}, "Top 10"),
    h("div", { id: "top" }),
  );
  const plot = chart(histogram, {
    label: `Histogram of the scores of exam ${exam} in ${BINS} bins`,
    scales: { x: { time: false, range: [0, 1] }, y: { range: (_u, _min, max) => [0, max + 1] } },
    axes: [{ label: "score" }, { label: "results" }],
    series: [
      { label: "score" },
      {
        label: "results in bin",
        stroke: "#0550ae",
        fill: "rgba(5, 80, 174, 0.35)",
        paths: uPlot.paths.bars({ size: [0.9, Infinity] }),
        points: { show: false },
      },
    ],
    legend: { show: false },
    describe: ([, counts]) => {
      const most = counts.indexOf(Math.max(...counts));
      return `The most results (${counts[most]}) score from ${most / BINS} to ${
        (most + 1) / BINS
      }.`;
    },
  }, signal);
  keepCurrent({
    everyMs: 3000,
    events: `/events?exam=${exam}`,
    signal,
    async refresh(signal) {
      const [totals, bins, top] = await Promise.all([
        getJson(`/exams/${exam}?limit=1`, signal),
        getJson(`/exams/${exam}/histogram?bins=${BINS}`, signal),
        getJson(`/exams/${exam}/top?n=10`, signal),
      ]);
      if (!totals || !bins || !top) {
        fill("exam-count", "0");
        fill("top", h("p", {}, "No results yet."));
        return;
      }
      fill("exam-count", integer(totals.count));
      fill("exam-average", score(totals.average));
      plot.setData([bins.bins.map((b) => (b.from + b.to) / 2), bins.bins.map((b) => b.count)]);
      fill(
        "bins",
        table(
          "Results per score range; the last range includes 1.",
          [
            ["Scores"],
            ["Results", true],
          ],
          bins.bins.map((b) => [`${b.from.toFixed(2)}–${b.to.toFixed(2)}`, integer(b.count)]),
          {
            id: "bins-table",
          },
        ),
      );
      fill(
        "top",
        table(
          "Best first; equal scores by studentId.",
          [["Rank", true], ["Student"], ["Score", true]],
          top.top.map((t, i) => [String(i + 1), studentLink(t.studentId), score(t.score)]),
          { id: "top-table" },
        ),
      );
    },
  });
}

function studentsView(prefix, signal) {
  const input = h("input", {
    id: "prefix",
    name: "prefix",
    type: "search",
    value: prefix,
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 128,
  });
  const results = h("div", { id: "search-results" });
  main.replaceChildren(
    h("h2", {}, "Students"),
    h(
      "form",
      {
        class: "search",
        role: "search",
        onsubmit: (event) => {
          event.preventDefault();
          location.hash = `#/students?prefix=${encodeURIComponent(input.value)}`;
        },
      },
      h("label", {}, "studentId starts with (case matters)", input),
      h("button", { type: "submit" }, "Search"),
    ),
    results,
  );
  if (!prefix) {
    results.append(h("p", {}, "Type the first characters of a studentId."));
    input.focus();
    return;
  }
  pager(results, {
    everyMs: 10_000,
    signal,
    path: `/students?limit=50&prefix=${encodeURIComponent(prefix)}`,
    render: (page) =>
      page.students.length
        ? table(
          `Students whose studentId starts with “${prefix}”, in UTF-8 byte order.`,
          [["Student"], ["Results", true], ["Average", true]],
          page.students.map((s) => [studentLink(s.studentId), integer(s.count), score(s.average)]),
          { id: "students" },
        )
        : h("p", { id: "students" }, `No studentId starts with “${prefix}”.`),
  });
}

const TREND = 20;

function studentView(studentId, signal) {
  const trend = h("div");
  const path = `/students/${encodeURIComponent(studentId)}`;
  main.replaceChildren(
    h("h2", {}, `Student ${studentId}`),
    cards([
      ["student-count", "Results", "–"],
      ["student-average", "Average", "–"],
      ["student-recent", `Average of the last ${TREND}`, "–"],
      ["student-slope", "Trend per exam", "–"],
    ]),
    h("h2", {}, `Trend over the last ${TREND} exams`),
    trend,
    h("h2", {}, "Results"),
    h("div", { id: "student-results" }),
  );
  const plot = chart(trend, {
    label: `Scores of ${studentId} in their latest exams`,
    scales: { x: { time: false }, y: { range: [0, 1] } },
    axes: [{ label: "exam" }, { label: "score" }],
    series: [
      { label: "exam" },
      { label: "score (solid, dots)", stroke: "#0550ae", width: 2, points: { size: 7 } },
      {
        label: "average (dashed)",
        stroke: "#953800",
        width: 2,
        dash: [6, 4],
        points: { show: false },
      },
    ],
    describe: ([exams, scores]) =>
      `${scores.length} results from exam ${exams[0]} to exam ${exams.at(-1)}, ` +
      `from ${score(Math.min(...scores))} to ${score(Math.max(...scores))}.`,
  }, signal);
  keepCurrent({
    everyMs: 5000,
    events: `/events?studentId=${encodeURIComponent(studentId)}`,
    signal,
    async refresh(signal) {
      const [all, recent] = await Promise.all([
        getJson(`${path}?limit=1000`, signal),
        getJson(`${path}/trend?last=${TREND}`, signal),
      ]);
      if (!all || !recent) {
        fill("student-results", h("p", {}, "No student has this studentId."));
        return;
      }
      fill("student-count", integer(all.count));
      fill("student-average", score(all.average));
      fill("student-recent", score(recent.recentAverage));
      fill(
        "student-slope",
        recent.slope === null
          ? "–"
          : `${recent.slope >= 0 ? "+" : "−"}${Math.abs(recent.slope).toFixed(4)}`,
      );
      plot.setData([
        recent.results.map((r) => r.exam),
        recent.results.map((r) => r.score),
        recent.results.map(() => all.average),
      ]);
      fill(
        "student-results",
        table(
          all.next === null
            ? "Every result, by exam."
            : `The first ${all.results.length} of ${integer(all.count)} results, by exam.`,
          [["Exam"], ["Score", true]],
          all.results.map((r) => [examLink(r.exam), score(r.score)]),
          { id: "results" },
        ),
      );
    },
  });
}

function quarantineView(signal) {
  main.replaceChildren(h("h2", {}, "Quarantine"));
  pager(main, {
    everyMs: 5000,
    signal,
    path: "/quarantine?limit=50",
    render: (page) =>
      page.events.length
        ? table(
          "Rejected events, newest first, with the first 256 characters of their data.",
          [["When"], ["Reason"], ["SSE id"], ["Excerpt"]],
          page.events.map((e) => [
            h("time", { datetime: e.receivedAt }, new Date(e.receivedAt).toLocaleString("en-GB")),
            e.reason,
            e.eventId ?? "none",
            h("code", {}, e.excerpt),
          ]),
          { id: "quarantine" },
        )
        : h("p", { id: "quarantine" }, "No event has been rejected."),
  });
}

let current;
function route() {
  current?.abort();
  current = new AbortController();
  liveStatus.textContent = "";
  // Split before decoding: a studentId may hold "/" or "?" (encoded in links).
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split(/\?(.*)/s);
  const [view, ...rest] = path.split("/");
  let argument = "";
  try {
    argument = decodeURIComponent(rest.join("/"));
  } catch { /* a malformed link: the view's list */ }
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    const active = link.dataset.view === (view || "service");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const signal = current.signal;
  if (view === "exams" && /^[0-9]+$/.test(argument)) examView(Number(argument), signal);
  else if (view === "exams") examsView(signal);
  else if (view === "students" && argument) studentView(argument, signal);
  else if (view === "students") {
    studentsView(new URLSearchParams(query).get("prefix") ?? "", signal);
  } else if (view === "quarantine") quarantineView(signal);
  else serviceView(signal);
  document.title = `scorestream: ${main.querySelector("h2")?.textContent ?? ""}`;
}

addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});
route();
