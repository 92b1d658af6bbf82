"""What each of clipedit's own error codes means, for the people who read it on a job or an answer.

One table per stage, in the order a job meets them. The codes themselves are raised where the
problem is found (``SpecError(..., code=...)``, ``MediaRejected``, the use cases); this table only
says what each means and what to do. The provider's own codes (``KLING_<n>``, ``FAL_<TYPE>``) are
in ``provider_errors``. ``tools/docs_refs.py`` renders both into the docs' code reference, and a
test fails when a code raised in the source is missing here or a code here is no longer raised.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeSection:
    title: str
    outcome: str  # what a user sees: the job's status, or the answer that carries the code
    codes: dict[str, str]  # code -> meaning


SPEC = CodeSection("The request", "REJECTED at intake; the provider is never called", {
    "MISSING_PROMPT": "no prompt from metadata, spec, preset folder or default preset",
    "PROMPT_TOO_LONG": "the prompt is over 2,500 characters",
    "INVALID_MODE": "`mode` is not `std` or `pro`",
    "INVALID_MODEL": "`model` is not `o3` or `o1`",
    "INVALID_PROVIDER": "`provider` is not `kling` or `fal`",
    "INVALID_KEEP_AUDIO": "`keep-audio`/`keep_audio` is not a boolean (true/false, yes/no, 1/0)",
    "INVALID_TYPE": "a field has a type it cannot have (a list where a string goes, ...)",
    "UNKNOWN_FIELD": "a manifest, preset, variant or element names a field that does not exist",
    "UNKNOWN_COLUMN": "a batch column that is not a spec field and looks like a misspelt one (the message names the field meant)",
    "UNKNOWN_REFERENCE": "the prompt says `@Image3` with two images, `@Element2` with one element, or `@Video2`",
    "TOO_MANY_REFERENCES": "images + elements > 4 (the provider's limit with a reference video)",
    "ELEMENT_WITHOUT_FRONTAL": "an element without a frontal image",
    "ELEMENT_REFERENCES": "an element with 0 or more than 3 reference images",
    "INVALID_VARIANTS": "bad variants: not a list, too many, a missing or duplicate name",
    "UNKNOWN_PLACEHOLDER": "a `{placeholder}` in the prompt or output key with no tag or column to fill it",
    "INVALID_OUTPUT_KEY": "an output key with `..`, control characters, or too long",
    "TOO_MANY_TAGS": "more tags than a job keeps",
    "UNKNOWN_PRESET": "the named preset is not in `presets/` (or its name is not valid)",
    "INVALID_URL": "a reference that is not `https://`, `s3://` or an inbox key (`http://`, `file://`, `..`)",
    "BUCKET_NOT_ALLOWED": "an `s3://` reference to a bucket that is neither the inbox nor in `AllowedInputBuckets`",
    "MISSING_VIDEO": "a manifest entry without `video_url`",
    "INVALID_JSON": "malformed JSON (line and column given)",
    "INVALID_MANIFEST": "a manifest that is not an object or a list of objects, or over 500 entries",
    "MANIFEST_TOO_LARGE": "a manifest over 1 MB",
    "MANIFEST_TOO_DEEP": "a manifest nested over 20 levels",
    "INVALID_ENCODING": "a manifest, preset or batch file that is not UTF-8",
    "INVALID_BATCH": "a malformed CSV/JSONL batch file (line given)",
    "BATCH_TOO_LARGE": "a batch file over 50,000 rows",
    "INVALID_SPEC": "the request is unusable (the general code when no specific one applies)",
})

MEDIA = CodeSection("The clip and the reference images", "REJECTED before any money is spent", {
    "REFERENCE_UNREADABLE": "a clip, image, spec or preset that cannot be read (missing, forbidden)",
    "CLIP_NOT_FOUND": "the clip is not there (404) or its URL no longer valid",
    "CLIP_FETCH_FAILED": "fetching the clip's URL failed for good (another HTTP error)",
    "NOT_A_VIDEO": "not an MP4/MOV at all (e.g. a text file named `.mp4`)",
    "CLIP_UNREADABLE": "an MP4/MOV that is truncated or corrupt",
    "CLIP_UNDECODABLE": "the prepare step could not decode the clip's frames",
    "NO_VIDEO_TRACK": "audio only, or a video track without frames",
    "UNSUPPORTED_CONTAINER": "a container the model does not take (e.g. 3GP)",
    "CLIP_TOO_SHORT": "shorter than the model's minimum (3 s)",
    "CLIP_TOO_LONG": "longer than the model's maximum (10 s); `trim` can cut a part",
    "RESOLUTION_TOO_LOW": "a side under 720 px (e.g. 480p)",
    "RESOLUTION_TOO_HIGH": "a side over 2160 px (over 4K UHD)",
    "FPS_TOO_LOW": "under 24 fps",
    "FPS_TOO_HIGH": "over 60 fps",
    "CLIP_TOO_LARGE": "over 200 MB",
    "EMPTY_CLIP": "0 bytes",
    "IMAGE_FORMAT": "a reference image that is not JPEG or PNG",
    "IMAGE_UNREADABLE": "a reference image that is truncated or corrupt",
    "IMAGE_TOO_LARGE": "a reference image over 10 MB",
    "IMAGE_TOO_SMALL": "a reference image with a side under 300 px",
    "IMAGE_ASPECT": "a reference image outside 1:2.5 to 2.5:1",
    "INVALID_MEDIA": "the clip breaks a provider limit (the general code when no specific one applies)",
})

PREPARE = CodeSection("Platform variants and preparation", "REJECTED before any money is spent", {
    "UNKNOWN_PLATFORM": "`platform` is not one of reels, tiktok, shorts, youtube, square",
    "INVALID_ASPECT_RATIO": "`aspect_ratio` is not 16:9, 9:16 or 1:1 (or `auto` where it is not allowed)",
    "ASPECT_RATIO_CONFLICT": "`platform` and `aspect_ratio` ask for different ratios",
    "ASPECT_RATIO_REQUIRED": "video-reference mode without an `aspect_ratio` or `platform`",
    "INVALID_REFRAME": "`reframe` is not `crop` or `pad`",
    "REFRAME_WITHOUT_RATIO": "`reframe` or `focus` without a ratio to frame for",
    "REFRAME_NOT_APPLICABLE": "`reframe`/`focus` in video-reference mode, where the provider composes a new shot",
    "INVALID_FOCUS": "`focus` is not `center`, `auto` or `x,y` fractions inside the frame",
    "FOCUS_NOT_APPLICABLE": "`focus` with `reframe: pad`, which keeps the whole frame",
    "INVALID_TRIM": "`trim` is not `START-END` seconds, or ends before it starts",
    "TRIM_TOO_SHORT": "`trim` keeps less than the model's 3 s",
    "TRIM_OUTSIDE_CLIP": "`trim` starts or ends after the clip ends",
    "INVALID_NORMALIZE": "`normalize` is not true or false",
    "CLIP_ROTATED": "a clip with a display rotation and `normalize: false`",
    "INVALID_VIDEO_MODE": "`video_mode` is not `edit` or `reference`",
    "INVALID_DURATION": "`duration` is not whole seconds",
    "DURATION_NOT_APPLICABLE": "`duration` in edit mode (an edit is as long as its clip)",
    "DURATION_OUT_OF_RANGE": "`duration` outside what the provider and model make in reference mode",
    "INVALID_SHOT_TYPE": "`shot_type` is not `customize` or `intelligence`",
    "SHOT_TYPE_NOT_APPLICABLE": "`shot_type` outside video-reference mode",
    "SHOT_TYPE_NOT_SUPPORTED": "`shot_type` on a provider/model that does not document it (only fal's O3)",
    "INVALID_OVERLAP": "`overlap` is not seconds in the allowed range (a long clip's crossfade seam)",
    "LONG_CLIP_NOT_APPLICABLE": "`long_clip: segment` in video-reference mode, where the clip only guides one new shot",
    "CLIP_OVER_MAX_SECONDS": "a long clip over the stack's `MaxClipSeconds` (set `trim` to edit a part of it)",
})

URLS = CodeSection("Fetching URLs", "REJECTED (a reference) or FAILED (a provider's result URL)", {
    "URL_SCHEME_NOT_ALLOWED": "the URL, or a redirect from it, is not `https://`",
    "URL_HOST_NOT_ALLOWED": "the host is not on `ReferenceHostAllowlist` (references) or `ResultHostAllowlist` (results)",
    "URL_ADDRESS_NOT_ALLOWED": "the host resolves to a private, loopback, link-local or reserved address",
    "URL_HAS_CREDENTIALS": "the URL carries `user:pass@`",
    "URL_TOO_MANY_REDIRECTS": "more than 3 redirects",
    "URL_INVALID": "a malformed URL",
    "URL_REJECTED": "the URL breaks the fetch policy (the general code when no specific one applies)",
})

AFTER_SUBMISSION = CodeSection("After submission", "FAILED or TIMED_OUT", {
    "PROVIDER_TASK_FAILED": "the provider failed the task; its reason (Kling's `task_status_msg`) is the message",
    "PROVIDER_NO_OUTPUT": "the provider reported success but gave no video",
    "PROVIDER_TASK_MISSING": "`clipedit reconcile --repair`: the provider does not know the job's task",
    "OUTPUT_DOWNLOAD_FAILED": "the result could not be copied into the outputs bucket",
    "OUTPUT_TOO_LARGE": "the result is over the copy's size cap",
    "ELEMENT_FAILED": "Kling could not create an element the job needs",
    "PREPARE_NOT_CONFIGURED": "the clip needs preparing but the stack has no prepare step",
    "DEADLINE_EXCEEDED": "TIMED_OUT: no result by the job's deadline (`JobDeadlineSeconds`)",
    "POLLER_GAVE_UP": "TIMED_OUT: the poller execution ended (`ExecutionTimeoutSeconds`) before the job did",
    "PROVIDER_BUSY_TOO_LONG": "TIMED_OUT: not accepted by the provider within `MaxQueueWaitSeconds`; the message says what it waited for",
    "CANCELLED": "CANCELLED on request (`clipedit cancel`); the reason given is the message",
    "PART_FAILED": "a long clip's part ended without an output; the message names the part (`clipedit retry` re-edits only the failed parts)",
    "STITCH_FAILED": "a long clip's edited parts could not be stitched back together",
    "STITCH_NOT_CONFIGURED": "a long clip's parts are done but the stack has no prepare step to stitch them",
})

PROVIDER_CALLS = CodeSection("Provider calls that did not get an answer", "QUEUED while retried; FAILED if they persist", {
    "PROVIDER_NOT_CONFIGURED": "the job names a provider the stack has no client for",
    "PROVIDER_CREDENTIALS_MISSING": "the provider secret holds no key for the job's provider",
    "PROVIDER_UNSUPPORTED": "the provider has no such operation (fal has no element library)",
    "PROVIDER_INCONSISTENT": "the provider says the task exists but cannot find it yet (retried)",
    "PROVIDER_ERROR": "the provider refused or failed a call (the general code when no specific one applies)",
    "FAL_NO_ENDPOINT": "fal has no edit endpoint for this model and mode",
    "FAL_RESULT_UNAVAILABLE": "fal's result could not be fetched",
    "FAL_JWKS_UNAVAILABLE": "fal's webhook keys could not be fetched (the poller finishes the job)",
})

COMMANDS = CodeSection("Commands and the status API", "an answer to the caller; no job changes", {
    "NOT_FOUND": "status API: no such job or batch (404)",
    "JOB_NOT_FOUND": "no such job",
    "NO_SUCH_ROUTE": "status API: no such route (404)",
    "INVALID_QUERY": "status API: a bad status, limit, time, cursor or query parameter (400)",
    "FORBIDDEN": "status API: the request reached the function without an IAM identity (403)",
    "NOT_RETRYABLE": "`clipedit retry` of a job that is not FAILED, TIMED_OUT or REJECTED, or was rejected before its edit was resolved",
    "CANCEL_REFUSED": "`clipedit cancel` refused (the general code)",
    "CANCEL_NOT_SUPPORTED": "`clipedit cancel` of a Kling job that Kling already has (its API has no cancel)",
    "JOB_ALREADY_FINISHED": "`clipedit cancel` of a finished job",
    "JOB_NOT_READY": "`clipedit cancel` of a job still being checked (RECEIVED): try again in a moment",
    "JOB_MOVED_ON": "`clipedit cancel` raced another status change",
    "INVALID_REVIEW": "`POST /jobs/{id}/review`: not an object, `review_status` not `approved`/`rejected`, another field, or a note that is not text (400)",
    "REVIEW_NOTE_TOO_LONG": "`POST /jobs/{id}/review`: a note over 2,000 characters (400)",
    "NOT_REVIEWABLE": "`POST /jobs/{id}/review` of a job that is not SUCCEEDED: there is nothing to review (409)",
    "INVALID_BATCH_FILE": "`clipedit batch --plan` or the review page's plan: a file that is not a UTF-8 `.csv`/`.jsonl` catalog",
})

INTERNAL = CodeSection("Inside the pipeline", "logged; never a job's final code", {
    "CALLBACK_REJECTED": "a callback with a wrong or missing token, or for no such job: the same 401 either way",
    "WEBHOOK_REJECTED": "a fal webhook failed its signature, timestamp or sender check (the reason is in the 401 and on the job's `callback_rejected`)",
    "TASK_MISMATCH": "the provider's task does not belong to the job; nothing is changed",
    "RETRY_LATER": "a transient condition: the message comes back later",
    "INVALID_MESSAGE": "an internal queue message of an unknown kind (a bug; it reaches the dead-letter queue)",
    "CONFIG_ERROR": "a function's configuration is invalid; raised at cold start, never mid-job",
    "CLIPEDIT_ERROR": "the base of every code above; never raised as such",
})

SECTIONS: tuple[CodeSection, ...] = (SPEC, MEDIA, PREPARE, URLS, AFTER_SUBMISSION, PROVIDER_CALLS, COMMANDS, INTERNAL)

# Codes put together at run time, so no literal of them is in the source: ``spec.parse_bool``
# raises ``INVALID_<FIELD>`` for the boolean metadata fields.
BUILT_AT_RUN_TIME = frozenset({"INVALID_KEEP_AUDIO"})
