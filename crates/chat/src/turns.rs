//! Turns: a question and the answer written for it. Sending adds both at the thread's head;
//! regenerating adds another answer to the same question; editing adds another question beside
//! the old one and answers it; either way the old branch stays and the head moves to the new one.
//! Selecting a version moves the head back. Only one answer is written per thread at a time.

use crate::runner::RunJob;
use crate::{Caller, ChatService, MessageView};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tale_core::chat::{newest_leaf, ChatMessage, FileRef, MessageRole, MessageStatus, Run, RunStatus, Thread, TokenCounts};
use tale_core::id::{new_id, now_ms};
use tale_core::{Error, Result};

/// A question's text is capped; long material belongs in an attachment or the knowledge base.
pub const MAX_QUESTION_CHARS: usize = 100_000;
const MAX_ATTACHMENTS: usize = 10;

/// What the user sends.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub content: String,
    pub attachments: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStarted {
    pub thread: Thread,
    pub question: Option<MessageView>,
    pub answer: MessageView,
    pub run_id: String,
}

fn message(thread_id: &str, parent: Option<&str>, role: MessageRole, content: &str, status: MessageStatus) -> ChatMessage {
    let now = now_ms();
    ChatMessage {
        id: new_id(),
        thread_id: thread_id.to_owned(),
        parent_id: parent.map(str::to_owned),
        role,
        content: content.to_owned(),
        parts: Vec::new(),
        attachments: Vec::new(),
        status,
        error: None,
        run_id: None,
        model: None,
        created_at: now,
        updated_at: now,
    }
}

/// A run that starts now for `message_id`.
fn running(thread: &Thread, c: &Caller<'_>, message_id: &str, run_id: &str) -> Run {
    Run {
        id: run_id.to_owned(),
        org_id: thread.org_id.clone(),
        thread_id: thread.id.clone(),
        message_id: message_id.to_owned(),
        user_id: c.grant.user_id.clone(),
        agent_slug: thread.agent_slug.clone(),
        provider: None,
        model: None,
        status: RunStatus::Running,
        created_at: now_ms(),
        finished_at: None,
        tokens: TokenCounts::default(),
        cost_cents: 0.0,
        error: None,
        log: json!({}),
    }
}

impl ChatService {
    async fn attachments(&self, c: &Caller<'_>, thread_id: &str, ids: &[String]) -> Result<Vec<FileRef>> {
        if ids.len() > MAX_ATTACHMENTS {
            return Err(Error::invalid(format!("at most {MAX_ATTACHMENTS} attachments per message")));
        }
        let mut out = Vec::new();
        for id in ids {
            let f = self.store().file(id).await?;
            match f {
                Some(f) if f.user_id == c.grant.user_id && f.org_id == c.grant.org_id && f.thread_id.as_deref().is_none_or(|t| t == thread_id) => {
                    out.push(f.as_ref())
                }
                _ => return Err(Error::invalid(format!("attachment '{id}' is not one of your uploads"))),
            }
        }
        Ok(out)
    }

    fn check_question(m: &NewMessage) -> Result<()> {
        if m.content.trim().is_empty() && m.attachments.is_empty() {
            return Err(Error::invalid("the message is empty"));
        }
        if m.content.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::invalid(format!("the message is longer than {MAX_QUESTION_CHARS} characters; attach it as a file instead")));
        }
        Ok(())
    }

    /// Writes the turn, reserves the thread's live slot and starts the run. `question` is the new
    /// question (none when regenerating); the answer hangs under `parent`.
    async fn start_turn(self: &Arc<Self>, c: &Caller<'_>, mut thread: Thread, question: Option<ChatMessage>, parent: &str) -> Result<TurnStarted> {
        let run_id = new_id();
        let mut answer = message(&thread.id, Some(parent), MessageRole::Assistant, "", MessageStatus::Streaming);
        answer.run_id = Some(run_id.clone());
        let run = running(&thread, c, &answer.id, &run_id);
        let Some((channel, cancel)) = self.hub.begin(&thread.id, &run_id, &answer.id, "", &[]) else {
            return Err(Error::Conflict("an answer is still being written in this chat; stop it first".into()));
        };
        let mut written: Vec<ChatMessage> = question.iter().cloned().collect();
        written.push(answer.clone());
        if let Err(e) = self.store().start_turn(&written, &run, &answer.id).await {
            channel.end();
            return Err(e);
        }
        thread.head_id = Some(answer.id.clone());
        thread.updated_at = run.created_at;
        let started = self.announce(&thread, question.as_ref(), &answer, &run_id).await?;
        self.launch(c, thread, run, answer, None, (channel, cancel));
        Ok(started)
    }

    /// Tells every tab of the thread about the new turn, carrying it whole: a tab appends it
    /// where its parent is, so the answer's first deltas never wait behind a fresh snapshot.
    async fn announce(&self, thread: &Thread, question: Option<&ChatMessage>, answer: &ChatMessage, run_id: &str) -> Result<TurnStarted> {
        let all = self.store().messages(&thread.id).await?;
        let live = self.hub.live(&thread.id);
        let started = TurnStarted {
            question: question.map(|q| self.view(q, &all, None)),
            answer: self.view(answer, &all, live.as_ref()),
            run_id: run_id.to_owned(),
            thread: thread.clone(),
        };
        self.publish(&thread.id, json!({"type": "turn", "thread": thread.id, "question": started.question, "answer": started.answer}));
        Ok(started)
    }

    /// Starts the run that writes `answer`, in the background.
    fn launch(self: &Arc<Self>, c: &Caller<'_>, thread: Thread, run: Run, answer: ChatMessage, resume: Option<Vec<tale_llm::client::Message>>, live: (Arc<crate::live::Channel>, tokio_util::sync::CancellationToken)) {
        let (channel, cancel) = live;
        let job = RunJob {
            thread,
            run,
            message: answer,
            user_name: c.principal.user.name.clone(),
            user_email: c.principal.user.email.clone(),
            role: c.grant.role,
            org_slug: c.grant.org_slug.clone(),
            locale: c.locale.to_owned(),
            resume,
            queued_at: Instant::now(),
            channel,
            cancel,
        };
        tokio::spawn(self.clone().execute(job));
    }

    /// Sends a question to the thread's agent and starts the answer.
    pub async fn send(self: &Arc<Self>, c: &Caller<'_>, thread_id: &str, m: NewMessage) -> Result<TurnStarted> {
        Self::check_question(&m)?;
        let thread = self.own_thread(c, thread_id).await?;
        let mut question = message(&thread.id, thread.head_id.as_deref(), MessageRole::User, &m.content, MessageStatus::Complete);
        question.attachments = self.attachments(c, &thread.id, &m.attachments).await?;
        let parent = question.id.clone();
        self.start_turn(c, thread, Some(question), &parent).await
    }

    /// Starts a new thread with an agent and its first question; the title comes from it.
    pub async fn start_thread(self: &Arc<Self>, c: &Caller<'_>, agent_slug: &str, m: NewMessage) -> Result<TurnStarted> {
        Self::check_question(&m)?;
        let title = tale_core::chat::title_from(if m.content.trim().is_empty() { "New chat" } else { &m.content });
        let thread = self.create_thread(c, agent_slug, Some(&title)).await?;
        self.send(c, &thread.id, m).await
    }

    /// Writes another answer to the question `answer_id` answered.
    pub async fn regenerate(self: &Arc<Self>, c: &Caller<'_>, thread_id: &str, answer_id: &str) -> Result<TurnStarted> {
        let thread = self.own_thread(c, thread_id).await?;
        let old = self.store().message(answer_id).await?.filter(|m| m.thread_id == thread.id && m.role == MessageRole::Assistant).ok_or(Error::NotFound("answer"))?;
        let parent = old.parent_id.clone().ok_or(Error::NotFound("question"))?;
        self.start_turn(c, thread, None, &parent).await
    }

    /// Replaces a question with new text (keeping its attachments unless others are given) in a
    /// new branch, and answers it.
    pub async fn edit(self: &Arc<Self>, c: &Caller<'_>, thread_id: &str, question_id: &str, m: NewMessage) -> Result<TurnStarted> {
        let thread = self.own_thread(c, thread_id).await?;
        let old = self.store().message(question_id).await?.filter(|q| q.thread_id == thread.id && q.role == MessageRole::User).ok_or(Error::NotFound("question"))?;
        let attachments = if m.attachments.is_empty() { old.attachments.clone() } else { self.attachments(c, &thread.id, &m.attachments).await? };
        let m = NewMessage { attachments: attachments.iter().map(|a| a.id.clone()).collect(), ..m };
        Self::check_question(&m)?;
        let mut question = message(&thread.id, old.parent_id.as_deref(), MessageRole::User, &m.content, MessageStatus::Complete);
        question.attachments = attachments;
        let parent = question.id.clone();
        self.start_turn(c, thread, Some(question), &parent).await
    }

    /// Shows another version of a message: the head moves to the newest message under it.
    pub async fn select(&self, c: &Caller<'_>, thread_id: &str, message_id: &str) -> Result<crate::ThreadView> {
        let thread = self.own_thread(c, thread_id).await?;
        if self.hub.live(thread_id).is_some() {
            return Err(Error::Conflict("an answer is still being written in this chat; stop it first".into()));
        }
        let all = self.store().messages(thread_id).await?;
        if !all.iter().any(|m| m.id == message_id) {
            return Err(Error::NotFound("message"));
        }
        let head = newest_leaf(&all, message_id);
        self.store().set_thread_head(thread_id, &head, now_ms()).await?;
        self.publish_changed(thread_id);
        let thread = Thread { head_id: Some(head), ..thread };
        Ok(self.thread_view(thread, &all, None, &c.grant.org_slug, c.locale))
    }

    /// Stops the answer being written; what was written so far is kept. False if none was.
    pub async fn stop(&self, c: &Caller<'_>, thread_id: &str) -> Result<bool> {
        self.own_thread(c, thread_id).await?;
        Ok(self.hub.stop(thread_id))
    }

    /// Answers the form an answer is waiting on, and lets the run continue.
    pub async fn answer_form(self: &Arc<Self>, c: &Caller<'_>, thread_id: &str, message_id: &str, call_id: &str, values: Value) -> Result<TurnStarted> {
        let thread = self.own_thread(c, thread_id).await?;
        let mut answer = self.store().message(message_id).await?.filter(|m| m.thread_id == thread.id && m.role == MessageRole::Assistant).ok_or(Error::NotFound("answer"))?;
        if answer.status != MessageStatus::Waiting {
            return Err(Error::Conflict("this answer is not waiting for input".into()));
        }
        if !values.is_object() {
            return Err(Error::invalid("values must be an object of field name to value"));
        }
        let form = answer.parts.iter_mut().find(|p| p["type"] == "form" && p["id"] == call_id).ok_or(Error::NotFound("form"))?;
        if !form["answer"].is_null() {
            return Err(Error::Conflict("this form was already answered".into()));
        }
        for field in form["fields"].as_array().cloned().unwrap_or_default() {
            let name = field["name"].as_str().unwrap_or_default();
            let given = values.get(name).filter(|v| !v.is_null() && v.as_str() != Some(""));
            if field["required"] == true && given.is_none() {
                return Err(Error::invalid(format!("'{}' is required", field["label"].as_str().unwrap_or(name))));
            }
        }
        form["answer"] = values.clone();
        // The tool call that showed the form is done once the user answers it.
        if let Some(call) = answer.parts.iter_mut().find(|p| p["type"] == "tool" && p["id"] == call_id) {
            call["status"] = json!("ok");
        }
        let old_run = answer.run_id.clone().ok_or(Error::NotFound("run"))?;
        let transcript_json = self.store().run(&old_run).await?.map(|r| r.log["transcript"].clone()).unwrap_or(Value::Null);
        let mut transcript: Vec<tale_llm::client::Message> =
            serde_json::from_value(transcript_json).map_err(|_| Error::Conflict("this answer can no longer be continued; regenerate it".into()))?;
        let mut result = tale_llm::client::Message::text(tale_llm::client::Role::Tool, &values.to_string());
        result.tool_call_id = Some(call_id.to_owned());
        transcript.push(result);

        let run_id = new_id();
        answer.status = MessageStatus::Streaming;
        answer.run_id = Some(run_id.clone());
        answer.updated_at = now_ms();
        let run = running(&thread, c, &answer.id, &run_id);
        let Some((channel, cancel)) = self.hub.begin(&thread.id, &run_id, &answer.id, &answer.content, &answer.parts) else {
            return Err(Error::Conflict("an answer is still being written in this chat; stop it first".into()));
        };
        if let Err(e) = self.store().start_turn(std::slice::from_ref(&answer), &run, &answer.id).await {
            channel.end();
            return Err(e);
        }
        let started = self.announce(&thread, None, &answer, &run_id).await?;
        self.launch(c, thread, run, answer, Some(transcript), (channel, cancel));
        Ok(started)
    }
}
