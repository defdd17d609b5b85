//! Traces that connect and logs that carry them: the real suite exports to a test OTLP receiver
//! (a tonic server implementing the OTLP trace collector), one page view is one trace.

mod collector;
mod deadlines;
mod logs;
mod traces;
