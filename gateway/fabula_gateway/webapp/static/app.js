// Fabula demo app: plain DOM, the public REST API only, no dependencies.
// Text from the API is only ever set as textContent (never parsed as HTML).

const TOKENS_KEY = "fabula.tokens";
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- the API

class ApiProblem extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "Something went wrong.");
    this.problem = problem;
  }
  get readable() {
    const { title, detail } = this.problem;
    return title && detail && detail !== title ? `${title}: ${detail}` : this.message;
  }
}

// Kept for this tab only: gone when it is closed, never seen by other sites.
let tokens = JSON.parse(sessionStorage.getItem(TOKENS_KEY) || "null");
let refreshing = null;

function keepTokens(pair) {
  tokens = pair ? { access_token: pair.access_token, refresh_token: pair.refresh_token } : null;
  if (tokens) sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
  else sessionStorage.removeItem(TOKENS_KEY);
}

async function problemOf(response) {
  try {
    return new ApiProblem(await response.json());
  } catch {
    return new ApiProblem({ title: `HTTP ${response.status}`, status: response.status });
  }
}

// New tokens for the refresh token, once for every request that needs them.
function refreshTokens() {
  refreshing ??= (async () => {
    try {
      const response = await fetch("/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refresh_token }),
      });
      if (!response.ok) return false;
      keepTokens(await response.json());
      return true;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function api(path, { method = "GET", body, stream = false, retried = false } = {}) {
  const headers = { Accept: stream ? "text/event-stream" : "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (tokens) headers.Authorization = `Bearer ${tokens.access_token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && tokens && !retried) {
    if (await refreshTokens()) return api(path, { method, body, stream, retried: true });
    signOut();
    throw new ApiProblem({ title: "Signed out", detail: "Your session has ended; sign in again." });
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

const getJson = async (path) => (await api(path)).json();
const postJson = async (path, body = {}) => (await api(path, { method: "POST", body })).json();

// Server-Sent Events from a fetch response: {event, data} per event.
async function* serverSentEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// ---------------------------------------------------------------- feedback

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof ApiProblem ? error.readable : String(error.message || error);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function announce(text) {
  $("status").textContent = text;
}

// Runs `work` with `controls` disabled, showing its failure as an alert.
async function busy(controls, work) {
  clearError();
  for (const control of controls) control.disabled = true;
  try {
    return await work();
  } catch (error) {
    announce("");
    showError(error);
  } finally {
    for (const control of controls) control.disabled = false;
  }
}

// ---------------------------------------------------------------- views

function show(viewId) {
  for (const id of ["auth-view", "library-view", "story-view", "council-view", "jobs-view"]) {
    $(id).hidden = id !== viewId;
  }
  $("account").hidden = viewId === "auth-view";
  $("nav").hidden = viewId === "auth-view";
  // Keyboard and screen-reader users land on the new view's heading.
  $(viewId).querySelector("h1").focus();
}

async function refreshUsage() {
  const usage = await getJson("/v1/usage");
  const meter = $("usage-meter");
  const limit = usage.generations_limit;
  meter.max = limit ?? Math.max(usage.generations_used, 1);
  meter.value = usage.generations_used;
  $("usage-text").textContent =
    limit === null
      ? `${usage.generations_used} used (${usage.plan} plan, unlimited)`
      : `${usage.generations_used} of ${limit} used (${usage.plan} plan)`;
}

async function showAccount() {
  const me = await getJson("/v1/me");
  $("signed-in-as").textContent = `Signed in as ${me.email}`;
  await refreshUsage();
}

let nextCursor = null;

function storyItem(story) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = `#/stories/${encodeURIComponent(story.id)}`;
  link.textContent = story.title;
  const meta = document.createElement("span");
  meta.className = "meta";
  const parts = [story.genre, `${story.segment_count} part${story.segment_count === 1 ? "" : "s"}`];
  if (story.is_complete) parts.push("complete");
  meta.textContent = ` · ${parts.join(" · ")}`;
  item.append(link, meta);
  return item;
}

async function loadStories({ more = false } = {}) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (more && nextCursor) query.set("cursor", nextCursor);
  const page = await getJson(`/v1/stories?${query}`);
  const list = $("story-list");
  if (!more) list.replaceChildren();
  list.append(...page.items.map(storyItem));
  nextCursor = page.next_cursor;
  $("more-stories").hidden = !nextCursor;
  $("no-stories").hidden = list.children.length > 0;
}

let story = null;

function renderStory() {
  $("story-title").textContent = story.title;
  const parts = [story.genre];
  if (story.characters.length) parts.push(`with ${story.characters.join(", ")}`);
  if (story.is_complete) parts.push("complete");
  // Say so when a text was not written by a language model (the built-in generator).
  if (story.segments.some((segment) => !segment.generated_by.is_language_model)) {
    parts.push("written by the offline generator (templates, not a language model)");
  }
  $("story-meta").textContent = parts.join(" · ");
  $("segments").replaceChildren(
    ...story.segments.map((segment) => {
      const item = document.createElement("li");
      item.className = `segment ${segment.kind}`;
      item.dataset.segmentId = segment.id;
      const text = document.createElement("p");
      text.textContent = segment.text;
      item.append(text);
      if (segment.alternative_count > 1) {
        const note = document.createElement("p");
        note.className = "meta";
        note.textContent = `version ${segment.alternative_number} of ${segment.alternative_count}`;
        item.append(note);
      }
      return item;
    }),
  );
  $("the-end").hidden = !story.is_complete;
  $("continue-form").hidden = story.is_complete;
}

async function openStory(storyId) {
  story = await getJson(`/v1/stories/${encodeURIComponent(storyId)}`);
  renderStory();
  show("story-view");
}

// Streams text as it is written into the live region `regionId` (its text
// in `${regionId}-text`); answers the data of the stream's last event (the
// stored segment, or the new story).
async function streamInto(regionId, path, body) {
  const region = $(regionId);
  const text = $(`${regionId}-text`);
  text.textContent = "";
  region.hidden = false;
  region.setAttribute("aria-busy", "true");
  let written = null;
  try {
    const response = await api(path, { method: "POST", body, stream: true });
    for await (const { event, data } of serverSentEvents(response)) {
      if (event === "token") text.textContent += data.text;
      else if (event === "error") throw new ApiProblem(data);
      else written = data;
    }
    return written;
  } finally {
    region.setAttribute("aria-busy", "false");
    region.hidden = true;
    refreshUsage().catch(showError);
  }
}

// Streams a segment into the story's live region; the story is then read again.
async function writeStreamed(path, body) {
  announce("Writing…");
  await streamInto("writing", path, body);
  story = await getJson(`/v1/stories/${encodeURIComponent(story.id)}`);
  renderStory();
  announce("Written.");
}

function directionBody() {
  const direction = $("direction").value.trim();
  return direction ? { direction } : {};
}

function storyControls() {
  return [$("continue-button"), $("regenerate-button"), $("end-button")];
}

// ---------------------------------------------------------------- the council

const STAGE_NAMES = { 1: "answers", 2: "reviews", 3: "the chairman" };
let conversationId = null;

// The block of one member's text in a stage, made on first need.
function memberBlock(stage, model) {
  const members = $(`stage-${stage}`).querySelector(".members");
  let block = [...members.children].find((child) => child.dataset.model === model);
  if (!block) {
    block = document.createElement("article");
    block.className = "member";
    block.dataset.model = model;
    const name = document.createElement("h3");
    name.textContent = model;
    const text = document.createElement("p");
    const ranking = document.createElement("p");
    ranking.className = "meta";
    block.append(name, text, ranking);
    members.append(block);
  }
  $(`stage-${stage}`).hidden = false;
  return block;
}

function resetCouncil() {
  for (const stage of [1, 2, 3]) {
    $(`stage-${stage}`).hidden = true;
    $(`stage-${stage}`).querySelector(".members").replaceChildren();
  }
  $("council-questions").hidden = true;
  $("follow-up-questions").replaceChildren();
}

function onCouncilEvent(event, data) {
  const progress = $("council-progress");
  if (event === "stage_started") {
    progress.textContent = `Stage ${data.stage} of 3: ${STAGE_NAMES[data.stage]}…`;
    $(`stage-${data.stage}`).hidden = false;
  } else if (event === "delta") {
    memberBlock(data.stage, data.model).querySelector("p").textContent += data.text;
  } else if (event === "answer") {
    memberBlock(1, data.model).querySelector("p").textContent = data.text;
  } else if (event === "review") {
    const block = memberBlock(2, data.model);
    block.querySelector("p").textContent = data.text;
    if (data.ranking?.length) {
      block.querySelector(".meta").textContent = `Ranking: ${data.ranking.join(", ")}`;
    }
  } else if (event === "chairman") {
    memberBlock(3, data.model).querySelector("p").textContent = data.text;
  } else if (event === "questions") {
    // Before deliberating the chairman asks; each question gets its answer field.
    $("follow-up-questions").replaceChildren(
      ...data.questions.map((question, index) => {
        const item = document.createElement("li");
        const label = document.createElement("label");
        label.htmlFor = `follow-up-${index}`;
        label.textContent = question;
        const answer = document.createElement("input");
        answer.id = `follow-up-${index}`;
        answer.required = true;
        answer.maxLength = 2000;
        item.append(label, answer);
        return item;
      }),
    );
    $("council-questions").hidden = false;
    progress.textContent = "The chairman has questions before the council deliberates.";
    return "questions";
  } else if (event === "error") {
    throw new ApiProblem(data);
  }
}

// Streams one council request (a question, or the answers to the chairman's
// questions) into the stages.
async function streamCouncil(path, body) {
  const stages = $("council-stages");
  stages.setAttribute("aria-busy", "true");
  $("council-progress").textContent = "The council is gathering…";
  let asked = false;
  try {
    const response = await api(path, { method: "POST", body, stream: true });
    for await (const { event, data } of serverSentEvents(response)) {
      if (onCouncilEvent(event, data) === "questions") asked = true;
    }
    if (!asked) $("council-progress").textContent = "The council has answered.";
  } finally {
    stages.setAttribute("aria-busy", "false");
    refreshUsage().catch(showError);
  }
  if (asked) $("follow-up-0").focus();
}

async function askCouncil(content) {
  conversationId ??= (await postJson("/v1/conversations", {})).id;
  resetCouncil();
  await streamCouncil(`/v1/conversations/${encodeURIComponent(conversationId)}/messages`, {
    content,
  });
}

async function answerChairman(answers) {
  await streamCouncil(`/v1/conversations/${encodeURIComponent(conversationId)}/follow-up`, {
    answers,
  });
  $("council-questions").hidden = true; // answered (kept on a failure, to try again)
}

// ---------------------------------------------------------------- long-form jobs

const TERMINAL_EVENTS = new Set(["done", "failed", "cancelled"]);
let projectId = null;

function renderJob(job) {
  $("job-progress").value = job.progress_percentage;
  $("job-cost").textContent =
    `Cost so far $${job.actual_cost_usd} of $${job.estimated_cost_usd} reserved · ${job.tokens_used} tokens`;
  $("job-stages").replaceChildren(
    ...job.stages.map((stage) => {
      const item = document.createElement("li");
      const done = job.completed_stages.includes(stage);
      const now = stage === job.current_stage && !done;
      item.textContent = `${stage}${done ? " ✓ done" : now ? " … running" : ""}`;
      if (now) item.setAttribute("aria-current", "step");
      return item;
    }),
  );
}

async function watchJob(job) {
  $("job").hidden = false;
  $("job-text").textContent = "";
  $("job-status").textContent = "Queued.";
  renderJob(job);
  const response = await api(`/v1/jobs/${encodeURIComponent(job.id)}/events`, { stream: true });
  for await (const { event, data } of serverSentEvents(response)) {
    if (event === "error") throw new ApiProblem(data);
    if (data.job) renderJob(data.job);
    else $("job-progress").value = data.progress_percentage;
    if (event === "text") $("job-text").textContent += data.text;
    else if (event === "stage_started") {
      $("job-status").textContent = `Writing: ${data.stage}…`;
      // Each stage's text starts a paragraph of its own.
      if ($("job-text").textContent) $("job-text").textContent += "\n\n";
    }
    else if (event === "done") $("job-status").textContent = "Done: the piece is written.";
    else if (event === "failed") {
      $("job-status").textContent = `Failed: ${data.job?.error_message || "the job failed"}.`;
    } else if (event === "cancelled") $("job-status").textContent = "Cancelled.";
    if (TERMINAL_EVENTS.has(event)) return;
  }
}

async function submitJob(values) {
  projectId ??= (await postJson("/v1/projects", { name: "Demo app pieces" })).id;
  const job = await postJson(`/v1/projects/${encodeURIComponent(projectId)}/jobs`, {
    premise: values.premise.trim(),
    production_type: values.production_type,
    target_words: Number(values.target_words),
  });
  await watchJob(job);
  refreshUsage().catch(showError);
}

// ---------------------------------------------------------------- routing

async function route() {
  clearError();
  if (!tokens) {
    show("auth-view");
    return;
  }
  const match = location.hash.match(/^#\/stories\/([^/]+)$/);
  await busy([], async () => {
    if (match) await openStory(decodeURIComponent(match[1]));
    else if (location.hash === "#/council") show("council-view");
    else if (location.hash === "#/jobs") show("jobs-view");
    else {
      await loadStories();
      show("library-view");
    }
  });
}

function signOut() {
  keepTokens(null);
  story = null;
  conversationId = null;
  projectId = null;
  resetCouncil();
  $("job").hidden = true;
  if (location.hash && location.hash !== "#/") location.hash = "#/";
  show("auth-view");
}

async function signedIn(pair) {
  keepTokens(pair);
  await showAccount();
  if (location.hash === "#/" || !location.hash) await route();
  else location.hash = "#/";
}

// ---------------------------------------------------------------- wiring

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  busy(form.querySelectorAll("button"), async () => {
    const { email, password } = formValues(form);
    await signedIn(await postJson("/v1/auth/login", { email, password }));
    form.reset();
  });
});

$("sign-up-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  busy(form.querySelectorAll("button"), async () => {
    const { email, password, full_name } = formValues(form);
    const body = { email, password };
    if (full_name.trim()) body.full_name = full_name.trim();
    await signedIn(await postJson("/v1/auth/register", body));
    form.reset();
  });
});

$("sign-out").addEventListener("click", () => signOut());

$("new-story-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  busy(form.querySelectorAll("button"), async () => {
    const values = formValues(form);
    const body = {
      genre: values.genre.trim(),
      characters: values.characters.split(",").map((name) => name.trim()).filter(Boolean),
    };
    if (values.opening_line.trim()) body.opening_line = values.opening_line.trim();
    announce("Writing the opening…");
    // The opening appears as it is written; then the story is shown.
    const created = await streamInto("opening", "/v1/stories", body);
    announce(`“${created.title}” has begun.`);
    location.hash = `#/stories/${encodeURIComponent(created.id)}`;
  });
});

$("more-stories").addEventListener("click", (event) => {
  busy([event.currentTarget], () => loadStories({ more: true }));
});

$("continue-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy(storyControls(), async () => {
    await writeStreamed(`/v1/stories/${encodeURIComponent(story.id)}/continue`, directionBody());
    $("direction").value = "";
  });
});

$("regenerate-button").addEventListener("click", () => {
  busy(storyControls(), async () => {
    const last = story.segments.at(-1);
    await writeStreamed(
      `/v1/stories/${encodeURIComponent(story.id)}/segments/${encodeURIComponent(last.id)}/regenerate`,
      directionBody(),
    );
    $("direction").value = "";
  });
});

$("end-button").addEventListener("click", () => {
  busy(storyControls(), async () => {
    announce("Writing the ending…");
    story = await postJson(`/v1/stories/${encodeURIComponent(story.id)}/end`, directionBody());
    renderStory();
    announce("The story is complete.");
    $("story-title").focus();
    refreshUsage().catch(showError);
  });
});

$("council-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  busy(form.querySelectorAll("button"), async () => {
    await askCouncil($("question").value.trim());
    $("question").value = "";
  });
});

$("follow-up-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const answers = [...$("follow-up-questions").querySelectorAll("input")].map((input) =>
    input.value.trim(),
  );
  busy(form.querySelectorAll("button"), () => answerChairman(answers));
});

$("job-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  busy(form.querySelectorAll("button"), () => submitJob(formValues(form)));
});

window.addEventListener("hashchange", route);

if (tokens) showAccount().catch(showError);
route();
