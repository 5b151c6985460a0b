//! A subscription queue's storage: a FIFO kept in chunks of the worker's batch size, so
//! the worker takes a batch by moving one chunk (three pointers), not by moving each
//! event out of a long queue.
//!
//! Every chunk but the first and the last is full (`chunk` events): pushes go to the back
//! chunk, pops and takes come from the front one. That keeps indexing from the front
//! (conflation replaces a pending event in its place) a division, not a walk. Emptied
//! chunks are kept for reuse, so steady state allocates nothing.

use std::collections::VecDeque;

pub(crate) struct Chunks<T> {
    chunks: VecDeque<VecDeque<T>>,
    spare: Vec<VecDeque<T>>,
    chunk: usize,
    len: usize,
}

impl<T> Chunks<T> {
    /// Empty, storing `chunk` (≥ 1) events per chunk.
    pub fn new(chunk: usize) -> Self {
        assert!(chunk >= 1, "chunk size must be at least 1");
        Chunks {
            chunks: VecDeque::new(),
            spare: Vec::new(),
            chunk,
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn push_back(&mut self, item: T) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < self.chunk => last.push_back(item),
            _ => {
                let mut c = self
                    .spare
                    .pop()
                    .unwrap_or_else(|| VecDeque::with_capacity(self.chunk));
                c.push_back(item);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let first = self.chunks.front_mut()?;
        let item = first.pop_front();
        if first.is_empty() {
            let c = self.chunks.pop_front().expect("front exists");
            self.spare.push(c);
        }
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    /// The `i`-th event from the front.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let first = self.chunks.front()?.len();
        if i < first {
            return self.chunks[0].get_mut(i);
        }
        let j = i - first;
        self.chunks
            .get_mut(1 + j / self.chunk)?
            .get_mut(j % self.chunk)
    }

    pub fn clear(&mut self) {
        while let Some(mut c) = self.chunks.pop_front() {
            c.clear();
            self.spare.push(c);
        }
        self.len = 0;
    }

    /// Move the front chunk (at most `chunk` events, in order) to the back of `into`;
    /// returns how many. When `into` is empty the chunk's buffer is swapped in and
    /// `into`'s old buffer kept for reuse.
    pub fn take_front(&mut self, into: &mut VecDeque<T>) -> usize {
        let Some(mut c) = self.chunks.pop_front() else {
            return 0;
        };
        let n = c.len();
        if into.is_empty() {
            std::mem::swap(into, &mut c);
        } else {
            into.append(&mut c);
        }
        self.spare.push(c);
        self.len -= n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32),
        Pop,
        Replace(usize, u32),
        Take,
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u32>().prop_map(Op::Push),
            2 => Just(Op::Pop),
            2 => (0usize..64, any::<u32>()).prop_map(|(i, v)| Op::Replace(i, v)),
            2 => Just(Op::Take),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Against a plain `VecDeque`: the same events, in the same order, at the same
        /// indices, whatever the mix of pushes, pops, in-place replacements and takes.
        #[test]
        fn behaves_as_one_fifo(chunk in 1usize..9, ops in proptest::collection::vec(op(), 0..300)) {
            let mut c = Chunks::new(chunk);
            let mut model: VecDeque<u32> = VecDeque::new();
            let mut taken = VecDeque::new();
            let mut model_taken = Vec::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        c.push_back(v);
                        model.push_back(v);
                    }
                    Op::Pop => prop_assert_eq!(c.pop_front(), model.pop_front()),
                    Op::Replace(i, v) => {
                        match (c.get_mut(i), model.get_mut(i)) {
                            (Some(a), Some(b)) => {
                                *a = v;
                                *b = v;
                            }
                            (None, None) => {}
                            (a, b) => prop_assert!(false, "index {i}: {a:?} vs {b:?}"),
                        }
                    }
                    Op::Take => {
                        let n = c.take_front(&mut taken);
                        prop_assert!(n <= chunk);
                        prop_assert_eq!(n == 0, model.is_empty());
                        model_taken.extend(model.drain(..n));
                        // Drain what was taken half of the time, to cover both paths.
                        if taken.len() % 2 == 0 {
                            prop_assert_eq!(taken.drain(..).collect::<Vec<_>>(), std::mem::take(&mut model_taken));
                        }
                    }
                    Op::Clear => {
                        c.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(c.len(), model.len());
                prop_assert_eq!(c.is_empty(), model.is_empty());
            }
            prop_assert_eq!(taken.into_iter().collect::<Vec<_>>(), model_taken);
            let mut rest = Vec::new();
            while let Some(v) = c.pop_front() {
                rest.push(v);
            }
            prop_assert_eq!(rest, model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_take_is_one_whole_chunk_and_reuses_buffers() {
        let mut c = Chunks::new(4);
        for i in 0..10 {
            c.push_back(i);
        }
        let mut batch = VecDeque::new();
        assert_eq!(c.take_front(&mut batch), 4);
        assert_eq!(batch, [0, 1, 2, 3]);
        batch.clear();
        assert_eq!(c.take_front(&mut batch), 4);
        assert_eq!(batch, [4, 5, 6, 7]);
        assert_eq!(c.len(), 2);
        // A pop from the front leaves a short first chunk; indexing still finds each.
        c.push_back(10);
        c.push_back(11);
        c.push_back(12);
        assert_eq!(c.pop_front(), Some(8));
        assert_eq!(c.get_mut(0).copied(), Some(9));
        assert_eq!(c.get_mut(1).copied(), Some(10));
        assert_eq!(c.get_mut(3).copied(), Some(12));
        assert_eq!(c.get_mut(4), None);
        // Two chunks were emptied and kept; new chunks come from them.
        let spare = c.spare.len();
        assert!(spare >= 1);
        for i in 13..20 {
            c.push_back(i);
        }
        assert!(c.spare.len() < spare);
    }
}
