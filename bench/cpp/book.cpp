// Reference price-level order book for bench/matching.py: std::map of price levels, each a
// std::list in time priority, and an unordered_map order id -> list iterator (O(1) cancel).
// Same semantics as domain/matching/book.py: price-time priority, partial fills, self-trade
// prevention cancelling the resting order, GTC remainder rests. Reads the order file
// ("A id side price lots account" / "C id"), then times only the processing loop and prints
// one JSON line with the checksums that bench/matching.py compares against the Python book.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <list>
#include <map>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

struct Order { int64_t id; int side; int64_t price; int64_t remaining; int64_t account; };
struct Op { char kind; int64_t id; int side; int64_t price; int64_t lots; int64_t account; };
struct Fill { int64_t maker; int64_t lots; };
using Level = std::list<Order>;
struct Loc { int side; int64_t price; Level::iterator it; };

static std::map<int64_t, Level, std::greater<int64_t>> bids;
static std::map<int64_t, Level> asks;
static std::unordered_map<int64_t, Loc> index_;
static std::vector<Fill> fills;

template <class Book, class Cross>
static int64_t match(Book& book, int64_t lots, int64_t account, Cross crosses) {
    while (lots > 0 && !book.empty()) {
        auto lvl = book.begin();
        if (!crosses(lvl->first)) break;
        Level& q = lvl->second;
        while (lots > 0 && !q.empty()) {
            Order& m = q.front();
            if (m.account == account) {  // self-trade prevention: cancel the resting order
                fills.push_back({m.id, 0});
                index_.erase(m.id);
                q.pop_front();
                continue;
            }
            int64_t f = m.remaining < lots ? m.remaining : lots;
            fills.push_back({m.id, f});
            lots -= f;
            m.remaining -= f;
            if (m.remaining == 0) { index_.erase(m.id); q.pop_front(); }
        }
        if (q.empty()) book.erase(lvl);
    }
    return lots;
}

int main(int argc, char** argv) {
    if (argc < 2) { std::fprintf(stderr, "usage: book <order file>\n"); return 2; }
    std::ifstream in(argv[1]);
    std::vector<Op> ops;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        Op op{};
        ss >> op.kind >> op.id;
        if (op.kind == 'A') ss >> op.side >> op.price >> op.lots >> op.account;
        ops.push_back(op);
    }
    index_.reserve(ops.size());
    fills.reserve(1024);
    int64_t n_fills = 0, filled_lots = 0, stp = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (const Op& op : ops) {
        if (op.kind == 'A') {
            fills.clear();
            int64_t left;
            if (op.side == 0) {
                left = match(asks, op.lots, op.account, [&](int64_t p) { return p <= op.price; });
            } else {
                left = match(bids, op.lots, op.account, [&](int64_t p) { return p >= op.price; });
            }
            for (const Fill& f : fills) {
                if (f.lots) { ++n_fills; filled_lots += f.lots; } else { ++stp; }
            }
            if (left > 0) {
                Order o{op.id, op.side, op.price, left, op.account};
                if (op.side == 0) {
                    Level& q = bids[op.price];
                    q.push_back(o);
                    index_[op.id] = Loc{0, op.price, std::prev(q.end())};
                } else {
                    Level& q = asks[op.price];
                    q.push_back(o);
                    index_[op.id] = Loc{1, op.price, std::prev(q.end())};
                }
            }
        } else {
            auto found = index_.find(op.id);
            if (found == index_.end()) continue;
            Loc loc = found->second;
            index_.erase(found);
            if (loc.side == 0) {
                auto lvl = bids.find(loc.price);
                lvl->second.erase(loc.it);
                if (lvl->second.empty()) bids.erase(lvl);
            } else {
                auto lvl = asks.find(loc.price);
                lvl->second.erase(loc.it);
                if (lvl->second.empty()) asks.erase(lvl);
            }
        }
    }
    auto t1 = std::chrono::steady_clock::now();
    int64_t resting_lots = 0;
    for (auto& kv : index_) resting_lots += kv.second.it->remaining;
    double seconds = std::chrono::duration<double>(t1 - t0).count();
    std::printf("{\"ops\": %zu, \"seconds\": %.6f, \"fills\": %lld, \"filled_lots\": %lld, "
                "\"stp\": %lld, \"resting\": %zu, \"resting_lots\": %lld}\n",
                ops.size(), seconds, (long long)n_fills, (long long)filled_lots, (long long)stp,
                index_.size(), (long long)resting_lots);
    return 0;
}
