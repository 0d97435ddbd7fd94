// The official `openai` npm client against a running `difftx serve` (tests/serve/openai_client_test.sh):
// completions and chat, non-streamed and streamed (the streamed text must equal the non-streamed
// one), the usage counts, and a 400 surfacing as the client's BadRequestError.
import OpenAI from "openai";

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: "unused" });
let failures = 0;
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures += 1;
}

const models = await client.models.list();
const model = models.data[0].id;
check(model === "wp-llama-12m", `models.list: ${model}`);

const prompt = { model, prompt: "The prince said", max_tokens: 20, temperature: 0 };
const completion = await client.completions.create(prompt);
const text = completion.choices[0].text;
check(text.length > 0 && completion.choices[0].finish_reason === "length", `completions.create: ${JSON.stringify(text)}`);
check(completion.usage.completion_tokens === 20 && completion.usage.total_tokens === completion.usage.prompt_tokens + 20,
      `usage ${JSON.stringify(completion.usage)}`);

let streamed = "";
let finish = null;
for await (const chunk of await client.completions.create({ ...prompt, stream: true })) {
  streamed += chunk.choices[0].text;
  finish = chunk.choices[0].finish_reason ?? finish;
}
check(streamed === text && finish === "length", "completions stream == non-streamed text");

const messages = [{ role: "user", content: "Who is Natasha?" }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
const reply = chat.choices[0].message.content;
check(chat.choices[0].message.role === "assistant" && reply.length > 0, `chat.completions.create: ${JSON.stringify(reply)}`);
let chatStreamed = "";
for await (const chunk of await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0, stream: true })) {
  chatStreamed += chunk.choices[0]?.delta?.content ?? "";
}
check(chatStreamed === reply, "chat stream == non-streamed reply");

try {
  await client.completions.create({ model, prompt: "a", temperature: "hot" });
  check(false, "a bad temperature is refused");
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "temperature",
        `bad temperature -> ${e.status} ${e.message}`);
}
process.exit(failures === 0 ? 0 : 1);
