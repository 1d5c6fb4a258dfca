//! The catalog: goodbooks-10k parsed, enriched with a genre, a price and a unit cost, and
//! indexed for BM25 search.

use std::collections::HashMap;
use std::path::Path;

use rand::Rng;
use rand::distributions::WeightedIndex;
use rand::prelude::Distribution;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::rng::{hash_str, rng_for};
use crate::{Error, Result};

const GOODBOOKS_CSV: &str = include_str!("../../../data/goodbooks-10k/books.csv");

/// Number of genres in [`GENRES`].
pub const N_GENRES: usize = 12;

/// Genre names, indexed by genre id.
pub const GENRES: [&str; N_GENRES] = [
    "Fantasy",
    "Science Fiction",
    "Mystery",
    "Romance",
    "History",
    "Biography",
    "Young Adult",
    "Classics",
    "Horror",
    "Business",
    "Children's",
    "Poetry",
];

pub const FANTASY: u8 = 0;
pub const SCIFI: u8 = 1;
pub const MYSTERY: u8 = 2;
pub const ROMANCE: u8 = 3;
pub const HISTORY: u8 = 4;
pub const BIOGRAPHY: u8 = 5;
pub const YOUNG_ADULT: u8 = 6;
pub const CLASSICS: u8 = 7;
pub const HORROR: u8 = 8;
pub const BUSINESS: u8 = 9;
pub const CHILDRENS: u8 = 10;
pub const POETRY: u8 = 11;

/// Share of books given each genre when no keyword decides it.
const GENRE_PRIOR: [f64; N_GENRES] = [
    0.12, 0.08, 0.15, 0.14, 0.06, 0.07, 0.10, 0.06, 0.05, 0.05, 0.08, 0.04,
];

/// Typical price (before noise) per genre, in dollars.
const GENRE_BASE_PRICE: [f64; N_GENRES] = [
    14.0, 13.0, 12.0, 9.0, 20.0, 18.0, 11.0, 9.5, 11.0, 22.0, 7.5, 12.0,
];

/// Author substrings (lowercase) that decide the genre.
const AUTHOR_GENRES: &[(&str, u8)] = &[
    ("tolkien", FANTASY),
    ("rowling", FANTASY),
    ("george r.r. martin", FANTASY),
    ("sanderson", FANTASY),
    ("robert jordan", FANTASY),
    ("pratchett", FANTASY),
    ("gaiman", FANTASY),
    ("le guin", FANTASY),
    ("rothfuss", FANTASY),
    ("robin hobb", FANTASY),
    ("terry brooks", FANTASY),
    ("eddings", FANTASY),
    ("salvatore", FANTASY),
    ("feist", FANTASY),
    ("jim butcher", FANTASY),
    ("c.s. lewis", FANTASY),
    ("mccaffrey", FANTASY),
    ("asimov", SCIFI),
    ("heinlein", SCIFI),
    ("frank herbert", SCIFI),
    ("orson scott card", SCIFI),
    ("philip k. dick", SCIFI),
    ("arthur c. clarke", SCIFI),
    ("scalzi", SCIFI),
    ("william gibson", SCIFI),
    ("douglas adams", SCIFI),
    ("michael crichton", SCIFI),
    ("christie", MYSTERY),
    ("conan doyle", MYSTERY),
    ("patterson", MYSTERY),
    ("connelly", MYSTERY),
    ("lee child", MYSTERY),
    ("grisham", MYSTERY),
    ("larsson", MYSTERY),
    ("gillian flynn", MYSTERY),
    ("coben", MYSTERY),
    ("dan brown", MYSTERY),
    ("baldacci", MYSTERY),
    ("j.d. robb", MYSTERY),
    ("evanovich", MYSTERY),
    ("sandford", MYSTERY),
    ("cornwell", MYSTERY),
    ("grafton", MYSTERY),
    ("mary higgins clark", MYSTERY),
    ("reichs", MYSTERY),
    ("karin slaughter", MYSTERY),
    ("lisa gardner", MYSTERY),
    ("nora roberts", ROMANCE),
    ("nicholas sparks", ROMANCE),
    ("danielle steel", ROMANCE),
    ("kleypas", ROMANCE),
    ("julia quinn", ROMANCE),
    ("colleen hoover", ROMANCE),
    ("gabaldon", ROMANCE),
    ("sylvia day", ROMANCE),
    ("e.l. james", ROMANCE),
    ("jojo moyes", ROMANCE),
    ("kristen ashley", ROMANCE),
    ("abbi glines", ROMANCE),
    ("sherrilyn kenyon", ROMANCE),
    ("j.r. ward", ROMANCE),
    ("kresley cole", ROMANCE),
    ("stephen king", HORROR),
    ("lovecraft", HORROR),
    ("anne rice", HORROR),
    ("koontz", HORROR),
    ("clive barker", HORROR),
    ("shirley jackson", HORROR),
    ("laurell k. hamilton", HORROR),
    ("austen", CLASSICS),
    ("dickens", CLASSICS),
    ("tolstoy", CLASSICS),
    ("dostoyevsky", CLASSICS),
    ("mark twain", CLASSICS),
    ("brontë", CLASSICS),
    ("hemingway", CLASSICS),
    ("fitzgerald", CLASSICS),
    ("steinbeck", CLASSICS),
    ("victor hugo", CLASSICS),
    ("shakespeare", CLASSICS),
    ("homer", CLASSICS),
    ("melville", CLASSICS),
    ("oscar wilde", CLASSICS),
    ("kafka", CLASSICS),
    ("george orwell", CLASSICS),
    ("virginia woolf", CLASSICS),
    ("vonnegut", CLASSICS),
    ("dr. seuss", CHILDRENS),
    ("eric carle", CHILDRENS),
    ("sendak", CHILDRENS),
    ("roald dahl", CHILDRENS),
    ("beverly cleary", CHILDRENS),
    ("shel silverstein", CHILDRENS),
    ("mo willems", CHILDRENS),
    ("judy blume", CHILDRENS),
    ("e.b. white", CHILDRENS),
    ("lemony snicket", CHILDRENS),
    ("rupi kaur", POETRY),
    ("mary oliver", POETRY),
    ("emily dickinson", POETRY),
    ("robert frost", POETRY),
    ("walt whitman", POETRY),
    ("rumi", POETRY),
    ("neruda", POETRY),
    ("malcolm gladwell", BUSINESS),
    ("jim collins", BUSINESS),
    ("covey", BUSINESS),
    ("dale carnegie", BUSINESS),
    ("kiyosaki", BUSINESS),
    ("ferriss", BUSINESS),
    ("drucker", BUSINESS),
    ("stephenie meyer", YOUNG_ADULT),
    ("suzanne collins", YOUNG_ADULT),
    ("veronica roth", YOUNG_ADULT),
    ("john green", YOUNG_ADULT),
    ("rick riordan", YOUNG_ADULT),
    ("cassandra clare", YOUNG_ADULT),
    ("sarah j. maas", YOUNG_ADULT),
    ("rainbow rowell", YOUNG_ADULT),
    ("lois lowry", YOUNG_ADULT),
    ("meg cabot", YOUNG_ADULT),
    ("richelle mead", YOUNG_ADULT),
    ("tamora pierce", YOUNG_ADULT),
    ("l.j. smith", YOUNG_ADULT),
    ("p.c. cast", YOUNG_ADULT),
    ("david mccullough", HISTORY),
    ("erik larson", HISTORY),
    ("yuval noah harari", HISTORY),
    ("jared diamond", HISTORY),
    ("stephen e. ambrose", HISTORY),
    ("walter isaacson", BIOGRAPHY),
    ("ron chernow", BIOGRAPHY),
];

/// Title words (lowercase tokens) that decide the genre.
const TITLE_GENRES: &[(&str, u8)] = &[
    ("poems", POETRY),
    ("poetry", POETRY),
    ("verses", POETRY),
    ("history", HISTORY),
    ("war", HISTORY),
    ("empire", HISTORY),
    ("revolution", HISTORY),
    ("civilization", HISTORY),
    ("ancient", HISTORY),
    ("memoir", BIOGRAPHY),
    ("biography", BIOGRAPHY),
    ("autobiography", BIOGRAPHY),
    ("diary", BIOGRAPHY),
    ("business", BUSINESS),
    ("leadership", BUSINESS),
    ("money", BUSINESS),
    ("habits", BUSINESS),
    ("management", BUSINESS),
    ("economics", BUSINESS),
    ("startup", BUSINESS),
    ("investing", BUSINESS),
    ("murder", MYSTERY),
    ("detective", MYSTERY),
    ("mystery", MYSTERY),
    ("crime", MYSTERY),
    ("killer", MYSTERY),
    ("dragon", FANTASY),
    ("dragons", FANTASY),
    ("magic", FANTASY),
    ("wizard", FANTASY),
    ("sword", FANTASY),
    ("throne", FANTASY),
    ("witch", FANTASY),
    ("robot", SCIFI),
    ("robots", SCIFI),
    ("galaxy", SCIFI),
    ("space", SCIFI),
    ("planet", SCIFI),
    ("alien", SCIFI),
    ("mars", SCIFI),
    ("love", ROMANCE),
    ("bride", ROMANCE),
    ("duke", ROMANCE),
    ("kiss", ROMANCE),
    ("wedding", ROMANCE),
    ("desire", ROMANCE),
    ("ghost", HORROR),
    ("haunted", HORROR),
    ("vampire", HORROR),
    ("zombie", HORROR),
    ("horror", HORROR),
];

const STOPWORDS: &[&str] = &[
    "the", "a", "an", "of", "and", "in", "to", "on", "for", "at", "by", "with", "from", "is", "it",
    "or", "as", "vol", "book", "books", "novel",
];

/// One book of the catalog.
#[derive(Debug, Clone)]
pub struct Book {
    /// goodbooks `book_id`; the output id is `bk_<id>`.
    pub id: u32,
    pub title: String,
    pub author: String,
    pub authors: String,
    pub genre: u8,
    pub series: Option<u32>,
    pub series_index: Option<u32>,
    pub price_cents: i64,
    pub unit_cost_cents: i64,
    pub year: Option<i32>,
    pub rating: f64,
    pub ratings_count: u64,
    /// Relative popularity (sampling weight).
    pub popularity: f64,
    /// Content words of the title (without the series part), for queries.
    pub title_words: Vec<String>,
}

/// A series: its name and its volumes with an integer index, sorted by index.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub volumes: Vec<(u32, u32)>,
}

#[derive(Debug, Deserialize)]
struct RawBook {
    book_id: u32,
    authors: String,
    original_publication_year: Option<f64>,
    title: String,
    average_rating: f64,
    ratings_count: u64,
}

/// Posting: (book index, term frequency).
type Posting = (u32, u16);

/// The catalog with its derived lookup structures.
#[derive(Debug)]
pub struct Catalog {
    pub books: Vec<Book>,
    pub series: Vec<Series>,
    /// Book indices per genre, sorted by popularity descending.
    pub by_genre: Vec<Vec<u32>>,
    genre_samplers: Vec<WeightedIndex<f64>>,
    /// Book indices by popularity descending.
    pub popular: Vec<u32>,
    index: HashMap<String, Vec<Posting>>,
    doc_len: Vec<u16>,
    avg_len: f64,
}

/// Lowercase content tokens of `text`.
pub fn tokenize(text: &str, out: &mut Vec<String>) {
    for raw in text.split(|c: char| !c.is_alphanumeric() && c != '\'') {
        let w = raw.trim_matches('\'').to_lowercase();
        let w = w.strip_suffix("'s").unwrap_or(&w).to_string();
        if w.chars().count() >= 2 && !STOPWORDS.contains(&w.as_str()) {
            out.push(w);
        }
    }
}

/// Splits `"Title (Series Name, #3)"` into the series name and its index (if an integer).
fn parse_series(title: &str) -> (Option<String>, Option<u32>) {
    let t = title.trim_end();
    if !t.ends_with(')') {
        return (None, None);
    }
    let Some(open) = t.rfind('(') else {
        return (None, None);
    };
    let inner = &t[open + 1..t.len() - 1];
    let first = inner.split(';').next().unwrap_or("");
    let Some(hash) = first.rfind('#') else {
        return (None, None);
    };
    let name = first[..hash].trim().trim_end_matches(',').trim();
    if name.is_empty() {
        return (None, None);
    }
    let idx = first[hash + 1..].trim().parse::<u32>().ok();
    (Some(name.to_string()), idx)
}

fn title_without_series(title: &str) -> &str {
    match parse_series(title) {
        (Some(_), _) => title.rfind('(').map_or(title, |i| title[..i].trim_end()),
        _ => title,
    }
}

fn keyword_genre(author: &str, words: &[String], year: Option<i32>) -> Option<u8> {
    let a = author.to_lowercase();
    if let Some((_, g)) = AUTHOR_GENRES.iter().find(|(k, _)| a.contains(k)) {
        return Some(*g);
    }
    for w in words {
        if let Some((_, g)) = TITLE_GENRES.iter().find(|(k, _)| k == w) {
            return Some(*g);
        }
    }
    match year {
        Some(y) if y < 1900 => Some(CLASSICS),
        _ => None,
    }
}

impl Catalog {
    /// Parses the embedded goodbooks-10k catalog and assigns genres, prices and costs from `seed`.
    pub fn load(seed: u64) -> Result<Catalog> {
        let mut reader = csv::Reader::from_reader(GOODBOOKS_CSV.as_bytes());
        let prior = WeightedIndex::new(GENRE_PRIOR).map_err(|e| Error::Internal(e.to_string()))?;
        let mut books = Vec::with_capacity(10_000);
        let mut series: Vec<Series> = Vec::new();
        let mut series_ids: HashMap<String, u32> = HashMap::new();
        for (i, row) in reader.deserialize::<RawBook>().enumerate() {
            let raw = row.map_err(|e| Error::Catalog {
                line: i + 2,
                reason: e.to_string(),
            })?;
            let author = raw
                .authors
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let (series_name, series_index) = parse_series(&raw.title);
            let series_id = series_name.map(|name| {
                let next = series_ids.len() as u32;
                *series_ids.entry(name.clone()).or_insert_with(|| {
                    series.push(Series {
                        name,
                        volumes: Vec::new(),
                    });
                    next
                })
            });
            let mut title_words = Vec::new();
            tokenize(title_without_series(&raw.title), &mut title_words);
            let year = raw.original_publication_year.map(|y| y as i32);
            let mut rng = rng_for(seed, 0xB00C, raw.book_id as u64, 0);
            // Genre: keywords first, else a seeded draw keyed by the series (or author) so that a
            // series and an author's shelf stay in one genre.
            let genre = keyword_genre(&author, &title_words, year).unwrap_or_else(|| {
                let key = series_id
                    .map(|s| series[s as usize].name.clone())
                    .unwrap_or_else(|| author.clone());
                let mut r = rng_for(seed, 0x6E4E, hash_str(&key), 0);
                prior.sample(&mut r) as u8
            });
            let mut price = GENRE_BASE_PRICE[genre as usize] * (rng.r#gen::<f64>() * 0.9 + 0.6);
            if year.is_some_and(|y| y >= 2010) {
                price *= 1.15;
            }
            let price_cents = ((price.round() as i64) * 100 - 1).clamp(499, 3999);
            let unit_cost_cents = ((price_cents as f64) * rng.gen_range(0.40..0.65)).round() as i64;
            books.push(Book {
                id: raw.book_id,
                title: raw.title,
                author,
                authors: raw.authors,
                genre,
                series: series_id,
                series_index,
                price_cents,
                unit_cost_cents,
                year,
                rating: raw.average_rating,
                ratings_count: raw.ratings_count,
                popularity: (raw.ratings_count.max(100) as f64).powf(0.6),
                title_words,
            });
        }
        // One genre per series: the genre of its first listed volume wins.
        let mut series_genre: Vec<Option<u8>> = vec![None; series.len()];
        for b in &mut books {
            if let Some(s) = b.series {
                b.genre = *series_genre[s as usize].get_or_insert(b.genre);
            }
        }
        for (i, b) in books.iter().enumerate() {
            if let (Some(s), Some(idx)) = (b.series, b.series_index) {
                series[s as usize].volumes.push((idx, i as u32));
            }
        }
        for s in &mut series {
            s.volumes.sort_unstable();
            s.volumes.dedup_by_key(|v| v.0);
        }
        Catalog::build(books, series)
    }

    fn build(books: Vec<Book>, series: Vec<Series>) -> Result<Catalog> {
        let mut by_genre: Vec<Vec<u32>> = vec![Vec::new(); N_GENRES];
        let mut popular: Vec<u32> = (0..books.len() as u32).collect();
        popular.sort_by(|&a, &b| {
            books[b as usize]
                .popularity
                .total_cmp(&books[a as usize].popularity)
                .then(a.cmp(&b))
        });
        for &i in &popular {
            by_genre[books[i as usize].genre as usize].push(i);
        }
        let genre_samplers = by_genre
            .iter()
            .map(|ids| {
                WeightedIndex::new(ids.iter().map(|&i| books[i as usize].popularity))
                    .map_err(|e| Error::Internal(format!("genre sampler: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut index: HashMap<String, Vec<Posting>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(books.len());
        let mut tokens = Vec::new();
        for (i, b) in books.iter().enumerate() {
            tokens.clear();
            tokenize(&b.title, &mut tokens);
            tokenize(&b.authors, &mut tokens);
            tokenize(GENRES[b.genre as usize], &mut tokens);
            doc_len.push(tokens.len() as u16);
            tokens.sort_unstable();
            let mut j = 0;
            while j < tokens.len() {
                let mut k = j;
                while k < tokens.len() && tokens[k] == tokens[j] {
                    k += 1;
                }
                index
                    .entry(tokens[j].clone())
                    .or_default()
                    .push((i as u32, (k - j) as u16));
                j = k;
            }
        }
        let avg_len = doc_len.iter().map(|&l| l as f64).sum::<f64>() / doc_len.len().max(1) as f64;
        Ok(Catalog {
            books,
            series,
            by_genre,
            genre_samplers,
            popular,
            index,
            doc_len,
            avg_len,
        })
    }

    /// True when the book is a series volume after the series' first volume in the catalog
    /// (or a series book without an integer index).
    pub fn is_later_volume(&self, book: u32) -> bool {
        let b = &self.books[book as usize];
        b.series.is_some_and(|s| {
            self.series[s as usize]
                .volumes
                .first()
                .is_none_or(|v| Some(v.0) != b.series_index)
        })
    }

    /// A book of `genre`, drawn by popularity.
    pub fn sample_in_genre(&self, genre: u8, rng: &mut ChaCha8Rng) -> u32 {
        let g = genre as usize;
        self.by_genre[g][self.genre_samplers[g].sample(rng)]
    }

    /// BM25 (k1 = 1.2, b = 0.75, OR semantics) over title, authors and genre. Fills `hits` with
    /// every matching book and its score, best first (ties by catalog order).
    pub fn search(&self, query_tokens: &[String], hits: &mut Vec<(u32, f32)>) {
        hits.clear();
        let n = self.books.len() as f64;
        for (qi, t) in query_tokens.iter().enumerate() {
            if query_tokens[..qi].contains(t) {
                continue;
            }
            let Some(postings) = self.index.get(t) else {
                continue;
            };
            let df = postings.len() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in postings {
                let tf = tf as f64;
                let dl = self.doc_len[doc as usize] as f64;
                let s = idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / self.avg_len));
                hits.push((doc, s as f32));
            }
        }
        hits.sort_unstable_by_key(|h| h.0);
        let mut w = 0;
        for r in 0..hits.len() {
            if w > 0 && hits[w - 1].0 == hits[r].0 {
                hits[w - 1].1 += hits[r].1;
            } else {
                hits[w] = hits[r];
                w += 1;
            }
        }
        hits.truncate(w);
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }

    /// Writes `books.csv` (columns of events.md).
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let io = |e: csv::Error| Error::Csv {
            path: path.to_path_buf(),
            source: e,
        };
        let mut w = csv::Writer::from_path(path).map_err(io)?;
        w.write_record([
            "book_id",
            "title",
            "author",
            "genre",
            "series",
            "series_index",
            "price",
            "unit_cost",
            "publication_year",
            "average_rating",
            "ratings_count",
        ])
        .map_err(io)?;
        for b in &self.books {
            let series = b
                .series
                .map(|s| self.series[s as usize].name.as_str())
                .unwrap_or("");
            w.write_record([
                format!("bk_{}", b.id).as_str(),
                &b.title,
                &b.author,
                GENRES[b.genre as usize],
                series,
                &b.series_index.map(|i| i.to_string()).unwrap_or_default(),
                &cents(b.price_cents),
                &cents(b.unit_cost_cents),
                &b.year.map(|y| y.to_string()).unwrap_or_default(),
                &format!("{:.2}", b.rating),
                &b.ratings_count.to_string(),
            ])
            .map_err(io)?;
        }
        w.flush().map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
    }
}

/// `1299` → `"12.99"`.
pub fn cents(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_parsing() {
        let check = |t: &str, name: Option<&str>, idx: Option<u32>| {
            assert_eq!(parse_series(t), (name.map(String::from), idx), "{t}");
        };
        check(
            "Harry Potter and the Sorcerer's Stone (Harry Potter, #1)",
            Some("Harry Potter"),
            Some(1),
        );
        check("The Shining (The Shining #1)", Some("The Shining"), Some(1));
        check(
            "The Lord of the Rings (The Lord of the Rings, #1-3)",
            Some("The Lord of the Rings"),
            None,
        );
        check(
            "The Color of Magic (Discworld, #1; Rincewind #1)",
            Some("Discworld"),
            Some(1),
        );
        check("To Kill a Mockingbird", None, None);
        check("Persepolis (Persepolis)", None, None);
    }

    #[test]
    fn catalog_is_consistent() {
        let c = Catalog::load(7).expect("catalog");
        assert_eq!(c.books.len(), 10_000);
        for s in &c.series {
            let g: Vec<u8> = s
                .volumes
                .iter()
                .map(|v| c.books[v.1 as usize].genre)
                .collect();
            assert!(g.windows(2).all(|w| w[0] == w[1]), "{}", s.name);
        }
        for b in &c.books {
            assert!((499..=3999).contains(&b.price_cents));
            let ratio = b.unit_cost_cents as f64 / b.price_cents as f64;
            assert!((0.39..=0.66).contains(&ratio));
        }
        let hp = c.books.iter().find(|b| b.id == 2).expect("book 2");
        assert_eq!(hp.genre, FANTASY);
        let mut q = Vec::new();
        tokenize("harry potter", &mut q);
        let mut hits = Vec::new();
        c.search(&q, &mut hits);
        assert!(hits.len() >= 5);
        assert!(c.books[hits[0].0 as usize].title.contains("Harry Potter"));
    }
}
